using System.Numerics;
using Iced.Intel;

namespace HotpatchTools.Engine.Assembly
{
    internal enum OperandType { Register, Memory, Immediate }

    internal sealed class MemoryRef
    {
        /// <summary>Size in bytes from a `dword ptr`-style keyword; 0 when the text gives none.</summary>
        public int Size { get; set; }
        public Register Segment { get; set; }
        /// <summary>Register.RIP for RIP-relative operands, whose displacement is then the absolute target.</summary>
        public Register Base { get; set; }
        public Register Index { get; set; }
        public int Scale { get; set; } = 1;
        public ulong Displacement { get; set; }
        /// <summary>Iced's MemoryDisplSize: 0 = none, 1 = smallest that fits, 4/8 = absolute address size.</summary>
        public int DisplSize { get; set; }

        public bool IsRipRelative => Base == Register.RIP;
        public bool IsAbsolute => Base == Register.None && Index == Register.None;
    }

    internal sealed class AsmOperand
    {
        private AsmOperand(OperandType type, int column, string text)
        {
            Type = type; Column = column; Text = text;
        }

        public OperandType Type { get; }
        /// <summary>0-based character index in the line.</summary>
        public int Column { get; }
        public string Text { get; }

        public Register Register { get; private set; }
        public MemoryRef Memory { get; private set; } = null!;
        public BigInteger Value { get; private set; }
        /// <summary>The label an immediate names; such a value is a synthetic address, usable only as a branch target.</summary>
        public string? Label { get; private set; }

        public static AsmOperand FromRegister(int column, string text, Register register) =>
            new AsmOperand(OperandType.Register, column, text) { Register = register };

        public static AsmOperand FromMemory(int column, string text, MemoryRef memory) =>
            new AsmOperand(OperandType.Memory, column, text) { Memory = memory };

        public static AsmOperand FromImmediate(int column, string text, BigInteger value, string? label) =>
            new AsmOperand(OperandType.Immediate, column, text) { Value = value, Label = label };

        /// <summary>Operand class as written in error messages, e.g. r64, m32, imm.</summary>
        public string Describe()
        {
            switch (Type)
            {
                case OperandType.Memory:
                    return Memory.Size == 0 ? "mem" : "m" + Memory.Size * 8;
                case OperandType.Immediate:
                    return Label != null ? "label" : "imm";
            }
            var reg = Register;
            if (reg.IsGPR8()) return "r8";
            if (reg.IsGPR16()) return "r16";
            if (reg.IsGPR32()) return "r32";
            if (reg.IsGPR64()) return "r64";
            if (reg.IsSegmentRegister()) return "sreg";
            if (reg.IsXMM()) return "xmm";
            if (reg.IsYMM()) return "ymm";
            if (reg.IsMM()) return "mm";
            if (reg.IsST()) return "st";
            if (reg.IsCR()) return "cr";
            if (reg.IsDR()) return "dr";
            return reg.ToString().ToLowerInvariant();
        }
    }
}
