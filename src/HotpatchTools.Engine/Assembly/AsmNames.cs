using Iced.Intel;

namespace HotpatchTools.Engine.Assembly
{
    /// <summary>Case-insensitive names of registers, mnemonics and size keywords.</summary>
    internal static class AsmNames
    {
        private static readonly Dictionary<string, Register> Registers = BuildRegisters();
        private static readonly Dictionary<string, Mnemonic> Mnemonics = BuildMnemonics();

        private static readonly Dictionary<string, int> MemorySizes = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase)
        {
            ["byte"] = 1, ["word"] = 2, ["dword"] = 4, ["fword"] = 6, ["qword"] = 8, ["tbyte"] = 10, ["tword"] = 10,
            ["xmmword"] = 16, ["oword"] = 16, ["ymmword"] = 32,
        };

        public static bool TryGetRegister(string name, out Register register) => Registers.TryGetValue(name, out register);

        public static bool TryGetMnemonic(string name, int bitness, out Mnemonic mnemonic)
        {
            // Iced's plain PUSHF/POPF/PUSHA/POPA are the 16-bit forms; in assembler text they mean the mode's native width.
            switch (name.ToLowerInvariant())
            {
                case "pushf": mnemonic = bitness == 64 ? Mnemonic.Pushfq : Mnemonic.Pushfd; return true;
                case "popf": mnemonic = bitness == 64 ? Mnemonic.Popfq : Mnemonic.Popfd; return true;
                case "pusha": mnemonic = bitness == 64 ? Mnemonic.Pusha : Mnemonic.Pushad; return true;
                case "popa": mnemonic = bitness == 64 ? Mnemonic.Popa : Mnemonic.Popad; return true;
            }
            return Mnemonics.TryGetValue(name, out mnemonic);
        }

        public static bool TryGetMemorySize(string keyword, out int bytes) => MemorySizes.TryGetValue(keyword, out bytes);

        private static Dictionary<string, Register> BuildRegisters()
        {
            var map = new Dictionary<string, Register>(StringComparer.OrdinalIgnoreCase);
            foreach (Register reg in Enum.GetValues(typeof(Register)))
            {
                bool supported = reg.IsGPR() || reg.IsSegmentRegister() || reg.IsCR() || reg.IsDR() || reg.IsST()
                    || reg.IsMM() || reg.IsXMM() || reg.IsYMM() || reg == Register.RIP;
                if (supported)
                    map[reg.ToString()] = reg;
            }
            // Intel's manuals name the low bytes of r8..r15 "r8b"; Iced calls them R8L.
            for (int n = 8; n <= 15; n++)
                map["r" + n + "b"] = (Register)Enum.Parse(typeof(Register), "R" + n + "L");
            return map;
        }

        private static Dictionary<string, Mnemonic> BuildMnemonics()
        {
            var map = new Dictionary<string, Mnemonic>(StringComparer.OrdinalIgnoreCase);
            foreach (Mnemonic m in Enum.GetValues(typeof(Mnemonic)))
            {
                if (m != Mnemonic.INVALID)
                    map[m.ToString()] = m;
            }

            var conditionAliases = new Dictionary<string, string>
            {
                ["z"] = "e", ["nz"] = "ne", ["c"] = "b", ["nae"] = "b", ["nc"] = "ae", ["nb"] = "ae",
                ["na"] = "be", ["nbe"] = "a", ["nge"] = "l", ["nl"] = "ge", ["ng"] = "le", ["nle"] = "g",
                ["pe"] = "p", ["po"] = "np",
            };
            foreach (var family in new[] { "j", "set", "cmov" })
                foreach (var alias in conditionAliases)
                    map[family + alias.Key] = map[family + alias.Value];

            // Iced's SAL is the undocumented /6 encoding; assemblers emit SHL (/4) for it.
            map["sal"] = Mnemonic.Shl;
            map["movabs"] = Mnemonic.Mov;
            map["retn"] = Mnemonic.Ret;
            map["fwait"] = Mnemonic.Wait;
            return map;
        }
    }
}
