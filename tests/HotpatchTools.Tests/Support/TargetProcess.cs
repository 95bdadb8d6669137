using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading.Tasks;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// A live native target. It is started through a shell that exits at once, so the target is not our
    /// child: the .NET runtime reaps its own children on SIGCHLD and would otherwise race our waitpid.
    /// Reads of its memory here use /proc directly and symbol addresses come from nm: an oracle
    /// independent of the engine under test.
    /// </summary>
    public sealed class TargetProcess : IDisposable
    {
        private readonly Process _shell;
        private readonly StreamWriter _in;
        private readonly StreamReader _out;

        public int Pid { get; }
        public string ExePath { get; }

        private TargetProcess(string exe)
        {
            ExePath = exe;
            var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
            psi.ArgumentList.Add("-c");
            // A background job gets /dev/null as stdin before explicit redirections apply: keep ours on fd 3.
            psi.ArgumentList.Add("exec 3<&0; \"$0\" <&3 3<&- & echo \"pid $!\"");
            psi.ArgumentList.Add(exe);
            _shell = Process.Start(psi)!;
            _in = _shell.StandardInput;
            _in.AutoFlush = true;
            _out = _shell.StandardOutput;
            int pid = 0;
            bool ready = false;
            while (!ready || pid == 0)
            {
                var line = ReadLine(TimeSpan.FromSeconds(10)) ?? throw new InvalidOperationException("target did not start");
                if (line.StartsWith("ready ")) ready = true;
                if (line.StartsWith("pid ")) pid = int.Parse(line[4..], CultureInfo.InvariantCulture);
            }
            Pid = pid;
        }

        public static TargetProcess Start(string? exe = null) => new TargetProcess(exe ?? NativeBuild.Target);

        public string Send(string command)
        {
            _in.WriteLine(command);
            return ReadLine(TimeSpan.FromSeconds(10)) ?? throw new InvalidOperationException("target closed its output after '" + command + "'");
        }

        public int Call(string fn, int x)
        {
            var reply = Send("call " + fn + " " + x);
            return int.TryParse(reply, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v : throw new InvalidOperationException("target replied '" + reply + "'");
        }

        public (long Calls, long Errors) Stats()
        {
            var parts = Send("stats").Split(' ');
            return (long.Parse(parts[0], CultureInfo.InvariantCulture), long.Parse(parts[1], CultureInfo.InvariantCulture));
        }

        private string? ReadLine(TimeSpan timeout)
        {
            var task = _out.ReadLineAsync();
            if (!task.Wait(timeout)) throw new TimeoutException("no answer from target " + Pid);
            return task.Result;
        }

        public bool IsAlive
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

        /// <summary>The state letter of every thread: no thread may be left in a tracing stop ('t').</summary>
        public IEnumerable<char> ThreadStates() =>
            Directory.GetDirectories("/proc/" + Pid + "/task").Select(d =>
            {
                var s = File.ReadAllText(Path.Combine(d, "stat"));
                return s[s.LastIndexOf(')') + 2];
            });

        public ulong ModuleBase()
        {
            var exe = File.ReadAllLines("/proc/" + Pid + "/maps").First(l => l.EndsWith(ExePath, StringComparison.Ordinal));
            return ulong.Parse(exe[..exe.IndexOf('-')], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }

        public ulong Symbol(string name)
        {
            var line = NativeBuild.Run("nm", "--defined-only", ExePath).Split('\n').First(l => l.EndsWith(" " + name, StringComparison.Ordinal));
            return ModuleBase() + ulong.Parse(line[..16], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }

        public byte[] Read(ulong address, int count)
        {
            using var mem = new FileStream("/proc/" + Pid + "/mem", FileMode.Open, FileAccess.Read);
            mem.Seek((long)address, SeekOrigin.Begin);
            var buf = new byte[count];
            mem.ReadExactly(buf);
            return buf;
        }

        public byte[] ReadSymbol(string name, int count) => Read(Symbol(name), count);

        /// <summary>Anonymous executable mappings that begin with the cave magic.</summary>
        public int CaveCount() =>
            File.ReadAllLines("/proc/" + Pid + "/maps")
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(f => f.Length == 5 && f[1].StartsWith("r-x"))
                .Count(f =>
                {
                    var start = ulong.Parse(f[0][..f[0].IndexOf('-')], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    try { return Read(start, 8).SequenceEqual("HPTCAVE1"u8.ToArray()); } catch (IOException) { return false; }
                });

        [DllImport("libc.so.6", EntryPoint = "kill")]
        private static extern int SysKill(int pid, int sig);

        public void Kill() => SysKill(Pid, 9);

        public void Dispose()
        {
            Kill();
            try { _in.Dispose(); } catch (IOException) { }
            _shell.Dispose();
        }
    }
}
