using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// Started through a shell that exits at once, so the target is not our child, as a real service is not.
    /// (Patching our own children is covered on purpose by ChildTargetTests.)
    /// </summary>
    public sealed class LinuxTarget : TargetProcess
    {
        private readonly Process _shell;

        /// <param name="args">Arguments for exe (e.g. a script for an interpreter); it must print a line "ready ..." when it is.</param>
        public LinuxTarget(string exe, params string[] args) : base(exe)
        {
            var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
            psi.ArgumentList.Add("-c");
            // A background job gets /dev/null as stdin before explicit redirections apply: keep ours on fd 3.
            psi.ArgumentList.Add("exec 3<&0; \"$0\" \"$@\" <&3 3<&- & echo \"pid $!\"");
            psi.ArgumentList.Add(exe);
            foreach (var a in args) psi.ArgumentList.Add(a);
            _shell = Process.Start(psi)!;
            Attach(_shell.StandardInput, _shell.StandardOutput);
            bool ready = false;
            while (!ready || Pid == 0)
            {
                var line = ReadLine() ?? throw new InvalidOperationException("target did not start");
                if (line.StartsWith("ready ")) ready = true;
                if (line.StartsWith("pid ")) Pid = int.Parse(line[4..], CultureInfo.InvariantCulture);
            }
        }

        public override bool IsAlive
        {
            get
            {
                try
                {
                    var stat = File.ReadAllText("/proc/" + Pid + "/stat");
                    char state = stat[stat.LastIndexOf(')') + 2];
                    return state != 'Z' && state != 'X';
                }
                catch (IOException) { return false; }
            }
        }

        public override IEnumerable<char> ThreadStates() =>
            Directory.GetDirectories("/proc/" + Pid + "/task").Select(d =>
            {
                var s = File.ReadAllText(Path.Combine(d, "stat"));
                return s[s.LastIndexOf(')') + 2];
            }).ToList();

        public override ulong ModuleBase()
        {
            var exe = File.ReadAllLines("/proc/" + Pid + "/maps").First(l => l.EndsWith(ExePath, StringComparison.Ordinal));
            return ulong.Parse(exe[..exe.IndexOf('-')], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }

        public override byte[] Read(ulong address, int count)
        {
            using var mem = new FileStream("/proc/" + Pid + "/mem", FileMode.Open, FileAccess.Read);
            mem.Seek((long)address, SeekOrigin.Begin);
            var buf = new byte[count];
            mem.ReadExactly(buf);
            return buf;
        }

        /// <summary>Anonymous r-x mappings (no file behind them) that begin with the cave magic.</summary>
        public override List<(ulong Start, ulong End)> CaveRegions() =>
            File.ReadAllLines("/proc/" + Pid + "/maps")
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(f => f.Length == 5 && f[1].StartsWith("r-x", StringComparison.Ordinal))
                .Select(f =>
                {
                    int dash = f[0].IndexOf('-');
                    return (Start: ulong.Parse(f[0][..dash], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                            End: ulong.Parse(f[0][(dash + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                })
                .Where(r => { try { return Read(r.Start, 8).SequenceEqual(CaveMagic); } catch (IOException) { return false; } })
                .ToList();

        [DllImport("libc.so.6", EntryPoint = "kill")]
        private static extern int SysKill(int pid, int sig);

        public override void Kill() => SysKill(Pid, 9);

        public override void Dispose()
        {
            base.Dispose();
            _shell.Dispose();
        }
    }
}
