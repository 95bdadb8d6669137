using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// A live native target (tests/native) driven over stdin/stdout. Its memory is read here directly and
    /// symbol addresses come from nm: an oracle independent of the engine under test.
    /// </summary>
    public abstract class TargetProcess : IDisposable
    {
        private StreamWriter _in = null!;
        private StreamReader _out = null!;

        public int Pid { get; protected set; }
        public string ExePath { get; }
        public string ModuleName => TestPlatform.ModuleName(ExePath);

        protected TargetProcess(string exe) { ExePath = exe; }

        public static TargetProcess Start(string? exe = null)
        {
            exe ??= NativeBuild.Target;
            return TestPlatform.IsWindows ? new WindowsTarget(exe) : new LinuxTarget(exe);
        }

        protected void Attach(StreamWriter input, StreamReader output)
        {
            _in = input;
            _in.AutoFlush = true;
            _out = output;
        }

        public string Send(string command)
        {
            _in.WriteLine(command);
            return ReadLine() ?? throw new InvalidOperationException("target closed its output after '" + command + "'");
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

        /// <summary>
        /// Reads on a thread of its own: blocking on an async read under a test framework's
        /// synchronization context can deadlock (it did under xunit v3 in Wine).
        /// </summary>
        protected string? ReadLine()
        {
            string? line = null;
            Exception? error = null;
            var reader = new System.Threading.Thread(() =>
            {
                try { line = _out.ReadLine(); }
                catch (Exception e) { error = e; }
            }) { IsBackground = true };
            reader.Start();
            if (!reader.Join(TimeSpan.FromSeconds(20))) throw new TimeoutException("no answer from target " + Pid);
            if (error != null) throw new IOException("reading from target " + Pid + " failed", error);
            return line;
        }

        public abstract bool IsAlive { get; }

        /// <summary>State letters of the target's threads where the OS shows them (Linux); no thread may be left in a tracing stop ('t').</summary>
        public virtual IEnumerable<char> ThreadStates() => Enumerable.Empty<char>();

        public abstract ulong ModuleBase();

        public ulong Symbol(string name) => ModuleBase() + NativeBuild.SymbolRva(ExePath, name);

        public abstract byte[] Read(ulong address, int count);

        public byte[] ReadSymbol(string name, int count) => Read(Symbol(name), count);

        /// <summary>Private executable memory regions that begin with the cave magic.</summary>
        public abstract int CaveCount();

        protected static readonly byte[] CaveMagic = Encoding.ASCII.GetBytes("HPTCAVE1");

        public abstract void Kill();

        public virtual void Dispose()
        {
            Kill();
            try { _in.Dispose(); } catch (IOException) { }
        }
    }
}
