using System.Text;
using Iced.Intel;

namespace HotpatchTools.Engine.Inspection
{
    /// <summary>Listing lines as an admin reads them: "0x7f12a4c01149: 48 89 e5  mov rbp,rsp".</summary>
    internal static class Disassembler
    {
        private static IntelFormatter NewFormatter()
        {
            var f = new IntelFormatter();
            f.Options.HexPrefix = "0x";
            f.Options.HexSuffix = null;
            f.Options.UppercaseHex = false;
            f.Options.BranchLeadingZeros = false;
            f.Options.SpaceAfterOperandSeparator = false;
            f.Options.ShowBranchSize = false;
            return f;
        }

        /// <summary>One instruction in the listing's syntax, e.g. "je 0x55a0b785f2e6".</summary>
        public static string Text(in Instruction ins)
        {
            var output = new StringOutput();
            NewFormatter().Format(ins, output);
            return output.ToStringAndReset();
        }

        /// <summary>
        /// Decodes code read from `address`: whole instructions until at least `minBytes` are covered and `minCount`
        /// instructions are listed, never past the bytes given. An undecodable byte is listed as "(bad)" and ends the listing.
        /// </summary>
        public static List<string> Lines(byte[] code, int length, ulong address, int bitness, int minBytes, int minCount = 0)
        {
            var lines = new List<string>();
            var formatter = NewFormatter();
            var output = new StringOutput();
            var decoder = Iced.Intel.Decoder.Create(bitness, new ByteArrayCodeReader(code, 0, length), address);
            int covered = 0;
            while ((covered < minBytes || lines.Count < minCount) && covered < length)
            {
                decoder.Decode(out var ins);
                if (ins.IsInvalid || covered + ins.Length > length)
                {
                    lines.Add(Line(address + (ulong)covered, code, covered, Math.Min(length - covered, 1), "(bad)"));
                    break;
                }
                formatter.Format(ins, output);
                lines.Add(Line(ins.IP, code, covered, ins.Length, output.ToStringAndReset()));
                covered += ins.Length;
            }
            return lines;
        }

        private static string Line(ulong ip, byte[] code, int offset, int count, string text)
        {
            var sb = new StringBuilder("0x").Append(ip.ToString("x")).Append(": ");
            for (int i = 0; i < count; i++)
            {
                if (i > 0) sb.Append(' ');
                sb.Append(code[offset + i].ToString("x2"));
            }
            return sb.Append("  ").Append(text).ToString();
        }
    }
}
