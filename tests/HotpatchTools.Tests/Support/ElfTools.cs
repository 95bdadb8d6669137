using System.Text.RegularExpressions;

namespace HotpatchTools.Tests.Support
{
    internal static class ElfTools
    {
        /// <summary>The system's libc: a distribution binary that nobody here wrote.</summary>
        public const string Libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";

        public static string ReadElfBuildId(string path) =>
            Regex.Match(NativeBuild.Run("readelf", "-n", path), @"Build ID: ([0-9a-f]+)").Groups[1].Value;

        /// <summary>nm's defined symbols as (name without @version, value, size), absolute ones left out.</summary>
        public static List<(string Name, ulong Value, ulong Size)> Nm(string path, bool dynamic)
        {
            var args = dynamic ? new[] { "-D", "-S", "--defined-only", path } : new[] { "-S", "--defined-only", path };
            var result = new List<(string, ulong, ulong)>();
            foreach (var line in NativeBuild.Run("nm", args).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                string type = f[^2], name = f[^1];
                if (type == "A" || type == "a") continue;
                int at = name.IndexOf('@');
                if (at > 0) name = name.Substring(0, at);
                result.Add((name, Convert.ToUInt64(f[0], 16), f.Length == 4 ? Convert.ToUInt64(f[1], 16) : 0));
            }
            return result;
        }

        /// <summary>readelf's FDEs (pc=start..end), the ground truth .eh_frame parsing is checked against;
        /// readelf exits 1 on libc after printing every FDE.</summary>
        public static List<(ulong Start, ulong End)> ReadElfFdes(string path) =>
            Regex.Matches(NativeBuild.Run("sh", "-c", "readelf --debug-dump=frames \"$0\" || true", path), @" FDE cie=[0-9a-f]+ pc=([0-9a-f]+)\.\.([0-9a-f]+)")
                .Select(m => (Convert.ToUInt64(m.Groups[1].Value, 16), Convert.ToUInt64(m.Groups[2].Value, 16)))
                .Where(r => r.Item2 > r.Item1 && r.Item1 != 0).OrderBy(r => r.Item1).ToList();

        /// <summary>The whole instructions objdump lists from `address` until at least `min` bytes are covered, as hex bytes.</summary>
        public static string ObjdumpBytes(string objdump, string file, ulong address, int min)
        {
            var listing = NativeBuild.Run(objdump, "-d", "--start-address=0x" + address.ToString("x"), "--stop-address=0x" + (address + 32).ToString("x"), file);
            var bytes = Regex.Matches(listing, @"^\s+[0-9a-f]+:\t((?:[0-9a-f]{2} )+)", RegexOptions.Multiline)
                .Select(m => m.Groups[1].Value.Trim()).ToList();
            var taken = bytes.Aggregate(("", 0), (acc, ins) => acc.Item2 >= min ? acc : ((acc.Item1 + " " + ins).Trim(), acc.Item2 + ins.Split(' ').Length));
            return taken.Item1;
        }

        /// <summary>
        /// The functions `caller` (a dynamic symbol) calls directly that no symbol names, as readelf's FDEs: how a
        /// static function of a stripped library is found without the engine's own readers.
        /// </summary>
        public static List<(ulong Start, ulong End)> UnnamedCallees(string path, string caller)
        {
            var dynamic = Nm(path, dynamic: true);
            var from = dynamic.Single(s => s.Name == caller);
            var listing = NativeBuild.Run("objdump", "-d", "--start-address=0x" + from.Value.ToString("x"), "--stop-address=0x" + (from.Value + from.Size).ToString("x"), path);
            var named = dynamic.Select(s => s.Value).ToHashSet();
            var targets = Regex.Matches(listing, @"\tcall\s+([0-9a-f]+) <(?![^>]*@plt>)")
                .Select(m => Convert.ToUInt64(m.Groups[1].Value, 16)).Where(a => !named.Contains(a)).ToHashSet();
            return ReadElfFdes(path).Where(f => targets.Contains(f.Start)).ToList();
        }

        public static ulong NmValue(string path, string name, bool dynamic = false) =>
            Nm(path, dynamic).Single(s => s.Name == name).Value;
    }
}
