using System.Globalization;
using System.Text.RegularExpressions;
using HotpatchTools.Engine.Modules;

namespace HotpatchTools.Tests.Support
{
    /// <summary>The independent view of a PE file: binutils' objdump and nm, and the header fields read by hand.</summary>
    internal static class PeTools
    {
        public static string Prefix(string path) => Header(path).Machine == PeImage.MachineAmd64 ? PeSamples.Prefix64 : PeSamples.Prefix32;

        public static string Objdump(string path, params string[] args) =>
            NativeBuild.Run(Prefix(path) + "objdump", args.Concat(new[] { path }).ToArray());

        private static string PrivateHeaderField(string path, string field) =>
            Regex.Match(Objdump(path, "-p"), "^" + Regex.Escape(field) + @"\t+(.+)$", RegexOptions.Multiline).Groups[1].Value.Trim();

        public static ulong ImageBase(string path) => Convert.ToUInt64(PrivateHeaderField(path, "ImageBase"), 16);
        public static uint SizeOfImage(string path) => Convert.ToUInt32(PrivateHeaderField(path, "SizeOfImage"), 16);

        public static uint TimeDateStamp(string path)
        {
            var fields = PrivateHeaderField(path, "Time/Date").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var time = DateTime.ParseExact(string.Join(" ", fields), "ddd MMM d HH:mm:ss yyyy", CultureInfo.InvariantCulture,
                DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);
            return (uint)new DateTimeOffset(time, TimeSpan.Zero).ToUnixTimeSeconds();
        }

        /// <summary>objdump's export table: each entry as (name or null, biased ordinal, RVA, forwarder or null).</summary>
        public static HashSet<(string?, uint, uint, string?)> Exports(string path)
        {
            var text = Objdump(path, "-p");
            uint ordinalBase = uint.Parse(Regex.Match(text, @"Export Address Table -- Ordinal Base (\d+)").Groups[1].Value);
            var table = text.Substring(text.IndexOf("Export Address Table -- Ordinal Base", StringComparison.Ordinal));
            var addresses = new Dictionary<uint, (uint Rva, string? Forwarder)>();
            foreach (Match m in Regex.Matches(table, @"^\t\[\s*(\d+)\] \+base\[\s*\d+\] ([0-9a-f]+) (Export RVA|Forwarder RVA -- (\S+))$", RegexOptions.Multiline))
                addresses[uint.Parse(m.Groups[1].Value)] = (Convert.ToUInt32(m.Groups[2].Value, 16), m.Groups[4].Success ? m.Groups[4].Value : null);
            var names = table.Substring(table.IndexOf("[Ordinal/Name Pointer] Table", StringComparison.Ordinal));
            names = names.Substring(0, names.IndexOf("\n\n", StringComparison.Ordinal));
            var result = new HashSet<(string?, uint, uint, string?)>();
            var named = new HashSet<uint>();
            foreach (Match m in Regex.Matches(names, @"^\t\[\s*(\d+)\] (\S+)$", RegexOptions.Multiline))
            {
                uint index = uint.Parse(m.Groups[1].Value);
                named.Add(index);
                result.Add((m.Groups[2].Value, ordinalBase + index, addresses[index].Rva, addresses[index].Forwarder));
            }
            foreach (var a in addresses.Where(a => !named.Contains(a.Key)))
                result.Add((null, ordinalBase + a.Key, a.Value.Rva, a.Value.Forwarder));
            return result;
        }

        /// <summary>objdump's interpretation of .pdata, as RVAs.</summary>
        public static List<(uint Begin, uint End)> FunctionTable(string path)
        {
            ulong imageBase = ImageBase(path);
            var text = Objdump(path, "-p");
            var table = text.Substring(text.IndexOf("The Function Table", StringComparison.Ordinal));
            return Regex.Matches(table, @"^ [0-9a-f]+:\t([0-9a-f]+) ([0-9a-f]+) [0-9a-f]+$", RegexOptions.Multiline)
                .Select(m => ((uint)(Convert.ToUInt64(m.Groups[1].Value, 16) - imageBase), (uint)(Convert.ToUInt64(m.Groups[2].Value, 16) - imageBase)))
                .ToList();
        }

        /// <summary>nm's value of a symbol defined once with that name (or of the one with the given type letter), as an RVA.</summary>
        public static uint NmRva(string path, string name, char? type = null)
        {
            var matches = NativeBuild.Run(Prefix(path) + "nm", "--defined-only", path).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(f => f.Length == 3 && f[2] == name && (type == null || f[1][0] == type))
                .ToList();
            Assert.True(matches.Count == 1, "nm has " + matches.Count + " symbols " + name + " in " + path);
            return (uint)(Convert.ToUInt64(matches[0][0], 16) - ImageBase(path));
        }

        /// <summary>Where the disassembly's next label after a symbol's starts, as an RVA: the end of that symbol's code.</summary>
        public static uint NextLabelAfter(string path, string symbol)
        {
            var labels = Regex.Matches(Objdump(path, "-d", "--section=.text"), @"^([0-9a-f]+) <(.+)>:$", RegexOptions.Multiline)
                .Select(m => (Address: Convert.ToUInt64(m.Groups[1].Value, 16), Name: m.Groups[2].Value)).ToList();
            int i = labels.FindIndex(l => l.Name == symbol);
            Assert.True(i >= 0 && i + 1 < labels.Count, symbol + " is not followed by another label in the disassembly of " + path);
            return (uint)(labels[i + 1].Address - ImageBase(path));
        }

        public readonly record struct SectionInfo(uint VirtualSize, uint VirtualAddress, uint RawSize, uint RawPointer);

        public sealed class HeaderInfo
        {
            public ushort Machine;
            public uint SizeOfImage, SizeOfHeaders, SymbolTable, SymbolCount;
            public int CoffHeader, OptionalHeader, DataDirectories;
            public List<SectionInfo> Sections = new List<SectionInfo>();

            public uint FileOffset(uint rva)
            {
                foreach (var s in Sections)
                    if (rva >= s.VirtualAddress && rva < s.VirtualAddress + Math.Min(s.VirtualSize, s.RawSize))
                        return rva - s.VirtualAddress + s.RawPointer;
                throw new ArgumentException("RVA 0x" + rva.ToString("x") + " has no file data");
            }

            public uint Directory(byte[] file, int index) => BitConverter.ToUInt32(file, DataDirectories + 8 * index);
        }

        public static HeaderInfo Header(string path) => Header(File.ReadAllBytes(path));

        public static HeaderInfo Header(byte[] file)
        {
            int pe = BitConverter.ToInt32(file, 0x3c);
            var h = new HeaderInfo { CoffHeader = pe + 4, OptionalHeader = pe + 24 };
            h.Machine = BitConverter.ToUInt16(file, h.CoffHeader);
            int sections = BitConverter.ToUInt16(file, h.CoffHeader + 2);
            h.SymbolTable = BitConverter.ToUInt32(file, h.CoffHeader + 8);
            h.SymbolCount = BitConverter.ToUInt32(file, h.CoffHeader + 12);
            int optionalSize = BitConverter.ToUInt16(file, h.CoffHeader + 16);
            h.SizeOfImage = BitConverter.ToUInt32(file, h.OptionalHeader + 56);
            h.SizeOfHeaders = BitConverter.ToUInt32(file, h.OptionalHeader + 60);
            h.DataDirectories = h.OptionalHeader + (BitConverter.ToUInt16(file, h.OptionalHeader) == 0x20b ? 112 : 96);
            for (int i = 0; i < sections; i++)
            {
                int s = h.OptionalHeader + optionalSize + 40 * i;
                h.Sections.Add(new SectionInfo(BitConverter.ToUInt32(file, s + 8), BitConverter.ToUInt32(file, s + 12),
                    BitConverter.ToUInt32(file, s + 16), BitConverter.ToUInt32(file, s + 20)));
            }
            return h;
        }

        /// <summary>What the Windows loader maps: the headers, then each section's file data at its RVA, zero-filled to SizeOfImage.</summary>
        public static byte[] LoadedLayout(byte[] file)
        {
            var h = Header(file);
            var image = new byte[h.SizeOfImage];
            Array.Copy(file, image, h.SizeOfHeaders);
            foreach (var s in h.Sections)
                Array.Copy(file, s.RawPointer, image, s.VirtualAddress, Math.Min(s.VirtualSize, s.RawSize));
            return image;
        }
    }
}
