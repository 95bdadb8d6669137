using Iced.Intel;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// Decoded instructions as the tests' expected listings spell them ("mov eax, [esp+4]", "je 0x1000"), formatted
    /// by Iced here rather than by the engine's own listing code, which is under test.
    /// </summary>
    internal static class InstructionText
    {
        /// <param name="spacedMemoryOperands">"[rbx + rcx*4 + 8]" rather than "[rbx+rcx*4+8]".</param>
        public static string Of(in Instruction instruction, bool spacedMemoryOperands = false)
        {
            var formatter = new IntelFormatter
            {
                Options =
                {
                    HexPrefix = "0x",
                    HexSuffix = null,
                    UppercaseHex = false,
                    SpaceAfterOperandSeparator = true,
                    SpaceBetweenMemoryAddOperators = spacedMemoryOperands,
                    ShowBranchSize = false,
                    BranchLeadingZeros = false,
                },
            };
            var output = new StringOutput();
            formatter.Format(instruction, output);
            return output.ToStringAndReset();
        }
    }
}
