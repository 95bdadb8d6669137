using HotpatchTools.Engine.Assembly;
using Iced.Intel;

namespace HotpatchTools.Tests
{
    public class FormSelectorTests
    {
        [Fact]
        public void Fixed_register_operand_kinds_are_exactly_the_ones_the_assembler_always_matched()
        {
            // The table is built from Iced's names: a kind a newer Iced names after a register, or a name that stops
            // parsing, shows up here instead of quietly widening or narrowing what the assembler accepts.
            var table = Enum.GetValues(typeof(OpCodeOperandKind)).Cast<OpCodeOperandKind>()
                .Where(FormSelector.FixedRegisters.ContainsKey)
                .Select(kind => kind + "=" + FormSelector.FixedRegisters[kind]);
            var expected = new[]
            {
                "al=AL", "cl=CL", "ax=AX", "dx=DX", "eax=EAX", "rax=RAX",
                "es=ES", "cs=CS", "ss=SS", "ds=DS", "fs=FS", "gs=GS", "st0=ST0",
            };
            Assert.Equal(expected.OrderBy(s => s, StringComparer.Ordinal), table.OrderBy(s => s, StringComparer.Ordinal));
            Assert.Equal(expected.Length, FormSelector.FixedRegisters.Count);
        }
    }
}
