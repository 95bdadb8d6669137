using System.Globalization;
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
            // One reader thread for the target's whole life, not one per reply: under Wine a thread that had just
            // exited could still be picked by the runtime's GC suspension, and Wine refuses SuspendThread on a
            // terminated thread (ACCESS_DENIED), which the runtime treats as fatal ("SuspendThread failed with error 5").
            _reader = new System.Threading.Thread(() =>
            {
                try
                {
                    for (string? line; (line = _out.ReadLine()) != null;) _lines.Add(line);
                }
                catch (Exception e) when (e is IOException || e is ObjectDisposedException) { _readError = e; }
                finally { _lines.CompleteAdding(); }
            }) { IsBackground = true, Name = "target output" };
            _reader.Start();
        }

        private readonly System.Collections.Concurrent.BlockingCollection<string> _lines = new System.Collections.Concurrent.BlockingCollection<string>();
        private System.Threading.Thread? _reader;
        private Exception? _readError;

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
        /// The next line from the reader thread: blocking on an async read under a test framework's
        /// synchronization context can deadlock (it did under xunit v3 in Wine). Null at the end of the output.
        /// </summary>
        protected string? ReadLine()
        {
            if (_lines.TryTake(out var line, TimeSpan.FromSeconds(20))) return line;
            if (_lines.IsCompleted)
            {
                if (_readError != null) throw new IOException("reading from target " + Pid + " failed", _readError);
                return null;
            }
            throw new TimeoutException("no answer from target " + Pid);
        }

        public abstract bool IsAlive { get; }

        /// <summary>State letters of the target's threads where the OS shows them (Linux); no thread may be left in a tracing stop ('t').</summary>
        public virtual IEnumerable<char> ThreadStates() => Enumerable.Empty<char>();

        public abstract ulong ModuleBase();

        public ulong Symbol(string name) => ModuleBase() + NativeBuild.SymbolRva(ExePath, name);

        public abstract byte[] Read(ulong address, int count);

        public byte[] ReadSymbol(string name, int count) => Read(Symbol(name), count);

        /// <summary>Private executable memory regions that begin with the cave magic.</summary>
        public abstract List<(ulong Start, ulong End)> CaveRegions();

        public int CaveCount() => CaveRegions().Count;

        /// <summary>The target's calling threads go on calling (through a detour, when installed): fails if they stall.</summary>
        public void WaitForCalls(long before, string threads)
        {
            for (int i = 0; i < 200 && Stats().Calls <= before + 10; i++) System.Threading.Thread.Sleep(50);
            Assert.True(Stats().Calls > before + 10, "the " + threads + " stopped calling");
        }

        /// <summary>
        /// Ends a run under load: the target's calling threads stop, having made more than <paramref name="minCalls"/>
        /// calls and no wrong result; then one more install and uninstall frees, with its own, every cave an uninstall
        /// had to retire while one of them was inside it.
        /// </summary>
        public void CalmAndFreeRetiredCaves(HotpatchEngine engine, string yaml, string patchId, long minCalls, string threads)
        {
            Assert.Equal("ok", Send("calm"));
            var (calls, errors) = Stats();
            Assert.True(calls > minCalls, "the " + threads + " made only " + calls + " calls");
            Assert.Equal(0L, errors);
            engine.Install(PatchFiles.Parse(yaml), Pid);
            Assert.True(engine.Uninstall(Pid, patchId).CaveFreed);
            Assert.Equal(0, CaveCount());
        }

        protected static readonly byte[] CaveMagic = Encoding.ASCII.GetBytes("HPTCAVE1");

        public abstract void Kill();

        public virtual void Dispose()
        {
            Kill();
            try { _in.Dispose(); } catch (IOException) { }
        }
    }
}
