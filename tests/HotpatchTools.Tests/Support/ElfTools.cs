using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;

namespace HotpatchTools.Tests.Support
{
    internal static class ElfTools
    {
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

        public static ulong NmValue(string path, string name, bool dynamic = false) =>
            Nm(path, dynamic).Single(s => s.Name == name).Value;
    }
}
