using System.Numerics;
using Iced.Intel;

namespace HotpatchTools.Engine.Assembly
{
    /// <summary>db/dw/dd/dq: raw data, emitted as Iced "declare data" pseudo-instructions.</summary>
    internal static class DataDirectives
    {
        /// <summary>Each line's instructions share its 16-address slot, so a line may hold at most 16 of them.</summary>
        public const int MaxInstructionsPerLine = 16;

        public static bool TryGetElementSize(string name, out int bytes)
        {
            switch (name.ToLowerInvariant())
            {
                case "db": bytes = 1; return true;
                case "dw": bytes = 2; return true;
                case "dd": bytes = 4; return true;
                case "dq": bytes = 8; return true;
                default: bytes = 0; return false;
            }
        }

        public static List<Instruction> Create(SourceLine line, Token directive, int elementSize, IReadOnlyList<AsmOperand> values)
        {
            var name = directive.Text.ToLowerInvariant();
            if (values.Count == 0)
                throw line.Error(directive.Column, "'" + name + "' needs at least one value");
            int perInstruction = 16 / elementSize;
            if (values.Count > perInstruction * MaxInstructionsPerLine)
                throw line.Error(directive.Column, "at most " + perInstruction * MaxInstructionsPerLine + " values fit on one '" + name + "' line");

            var bytes = new byte[values.Count * elementSize];
            for (int i = 0; i < values.Count; i++)
            {
                var value = values[i];
                if (value.Type != OperandType.Immediate)
                    throw line.Error(value.Column, "'" + name + "' takes numbers and symbols, not '" + value.Text + "'");
                if (value.Label != null)
                    throw line.Error(value.Column, "label '" + value.Label + "' can't be a data value: its final address isn't known when assembling");
                int bits = elementSize * 8;
                if (value.Value < -(BigInteger.One << (bits - 1)) || value.Value >= (BigInteger.One << bits))
                    throw line.Error(value.Column, "value " + value.Text + " does not fit in " + bits + " bits");
                var element = OperandParser.ToBits(value.Value, 64);
                for (int b = 0; b < elementSize; b++)
                    bytes[i * elementSize + b] = (byte)(element >> (8 * b));
            }

            var instructions = new List<Instruction>();
            for (int offset = 0; offset < bytes.Length; offset += 16)
            {
                int length = Math.Min(16, bytes.Length - offset);
                instructions.Add(elementSize switch
                {
                    1 => Instruction.CreateDeclareByte(bytes, offset, length),
                    2 => Instruction.CreateDeclareWord(bytes, offset, length),
                    4 => Instruction.CreateDeclareDword(bytes, offset, length),
                    _ => Instruction.CreateDeclareQword(bytes, offset, length),
                });
            }
            return instructions;
        }
    }
}
