using Iced.Intel;

namespace HotpatchTools.Engine.Assembly
{
    /// <summary>
    /// MOVS/STOS/LODS/SCAS/CMPS/INS/OUTS written without operands. Their implicit [rsi]/[rdi] operands are not
    /// ModRM forms, so they come from Iced's dedicated factories rather than the generic opcode matching.
    /// </summary>
    internal static class StringInstructions
    {
        public static bool IsStringMnemonic(string name)
        {
            switch (name.ToLowerInvariant())
            {
                case "movsb": case "movsw": case "movsd": case "movsq":
                case "stosb": case "stosw": case "stosd": case "stosq":
                case "lodsb": case "lodsw": case "lodsd": case "lodsq":
                case "scasb": case "scasw": case "scasd": case "scasq":
                case "cmpsb": case "cmpsw": case "cmpsd": case "cmpsq":
                case "insb": case "insw": case "insd":
                case "outsb": case "outsw": case "outsd":
                    return true;
                default:
                    return false;
            }
        }

        public static Instruction Create(SourceLine line, Token mnemonic, int bitness, PrefixRequest prefix)
        {
            var name = mnemonic.Text.ToLowerInvariant();
            if (prefix.Lock != null)
                throw line.Error(prefix.Lock.Value.Column, "'lock' can't be used with '" + name + "'");
            // Only the comparing string instructions distinguish REPE from REPNE; the others just repeat.
            bool compares = name.StartsWith("cmps", System.StringComparison.Ordinal) || name.StartsWith("scas", System.StringComparison.Ordinal);
            var rep = prefix.Rep == null ? RepPrefixKind.None : prefix.RepKind;
            if (rep == RepPrefixKind.Repne && !compares)
                throw line.Error(prefix.Rep!.Value.Column, "'" + prefix.Rep.Value.Text + "' can't be used with '" + name + "'; use 'rep'");

            var instruction = Build(name, bitness, rep);
            var info = instruction.Code.ToOpCode();
            if (bitness == 64 ? !info.Mode64 : !info.Mode32)
                throw line.Error(mnemonic.Column, "'" + name + "' is not valid in " + bitness + "-bit code");
            return instruction;
        }

        private static Instruction Build(string name, int addressSize, RepPrefixKind rep)
        {
            var noSegment = Register.None;
            switch (name)
            {
                case "movsb": return Instruction.CreateMovsb(addressSize, noSegment, rep);
                case "movsw": return Instruction.CreateMovsw(addressSize, noSegment, rep);
                case "movsd": return Instruction.CreateMovsd(addressSize, noSegment, rep);
                case "movsq": return Instruction.CreateMovsq(addressSize, noSegment, rep);
                case "stosb": return Instruction.CreateStosb(addressSize, rep);
                case "stosw": return Instruction.CreateStosw(addressSize, rep);
                case "stosd": return Instruction.CreateStosd(addressSize, rep);
                case "stosq": return Instruction.CreateStosq(addressSize, rep);
                case "lodsb": return Instruction.CreateLodsb(addressSize, noSegment, rep);
                case "lodsw": return Instruction.CreateLodsw(addressSize, noSegment, rep);
                case "lodsd": return Instruction.CreateLodsd(addressSize, noSegment, rep);
                case "lodsq": return Instruction.CreateLodsq(addressSize, noSegment, rep);
                case "scasb": return Instruction.CreateScasb(addressSize, rep);
                case "scasw": return Instruction.CreateScasw(addressSize, rep);
                case "scasd": return Instruction.CreateScasd(addressSize, rep);
                case "scasq": return Instruction.CreateScasq(addressSize, rep);
                case "cmpsb": return Instruction.CreateCmpsb(addressSize, noSegment, rep);
                case "cmpsw": return Instruction.CreateCmpsw(addressSize, noSegment, rep);
                case "cmpsd": return Instruction.CreateCmpsd(addressSize, noSegment, rep);
                case "cmpsq": return Instruction.CreateCmpsq(addressSize, noSegment, rep);
                case "insb": return Instruction.CreateInsb(addressSize, rep);
                case "insw": return Instruction.CreateInsw(addressSize, rep);
                case "insd": return Instruction.CreateInsd(addressSize, rep);
                case "outsb": return Instruction.CreateOutsb(addressSize, noSegment, rep);
                case "outsw": return Instruction.CreateOutsw(addressSize, noSegment, rep);
                case "outsd": return Instruction.CreateOutsd(addressSize, noSegment, rep);
                default: throw new System.InvalidOperationException("'" + name + "' is not a string instruction");
            }
        }
    }
}
