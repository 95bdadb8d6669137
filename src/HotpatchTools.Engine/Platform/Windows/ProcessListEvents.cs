using System.Runtime.InteropServices;
using System.Threading;

namespace HotpatchTools.Engine.Platform.Windows
{
    /// <summary>
    /// The fallback where no ETW session can be had (not elevated, Wine, an old system): the process list alone,
    /// read in one NtQuerySystemInformation call every <see cref="Period"/>, and every process not in the previous
    /// read (by id and creation time, so a reused id counts as new) reported as started. The period adapts to
    /// what a read costs, so that a watch that waits costs about 1% of a core at most: on Windows a read takes a fraction of a
    /// millisecond and the period stays at its 50 ms floor; Wine answers in a few milliseconds (its ntdll reads
    /// /proc for every process), and there the period grows to a few hundred. It sees no late module
    /// loads: the watch's passes still find those. A new process is reported again a few times while young: its
    /// loader may not have listed its modules yet when the first look comes (process start takes up to a second under
    /// Wine). The kernel's answer is walked with every offset bounds-checked.
    /// </summary>
    internal sealed unsafe class ProcessListEvents : IProcessEvents
    {
        /// <summary>The shortest and the longest period: a new process looked at within tens of milliseconds, and never later than a second.</summary>
        public static readonly TimeSpan MinPeriod = TimeSpan.FromMilliseconds(50), MaxPeriod = TimeSpan.FromSeconds(1);
        /// <summary>
        /// A period this many times the wall time of a read: the reads take 0.5% of the time. Their CPU cost is about
        /// twice that under Wine (measured: a read and the wait around it cost more CPU than the read's wall time).
        /// </summary>
        private const int Duty = 200;
        /// <summary>The cost of a read, smoothed (ms).</summary>
        private double _readMs;

        /// <summary>The current period: <see cref="Duty"/> times the smoothed cost of a read, within its bounds.</summary>
        public TimeSpan Period => TimeSpan.FromMilliseconds(Math.Max(MinPeriod.TotalMilliseconds, Math.Min(MaxPeriod.TotalMilliseconds, _readMs * Duty)));
        /// <summary>The list of a machine with thousands of processes fits; beyond this a read fails and the tick is skipped.</summary>
        private const int MaxBuffer = 64 << 20;

        private readonly string _why;
        private readonly int _self = Win32.GetCurrentProcessId();
        private readonly Action<string>? _log;
        private HashSet<(int Pid, long Created)> _known = new HashSet<(int, long)>(), _next = new HashSet<(int, long)>();
        private IntPtr _buffer;
        private int _size = 256 << 10;
        private string? _lastError;
        /// <summary>Ages (ms) at which a new process is reported again; Enforcer's follow-ups after each cover the next moments.</summary>
        private static readonly int[] Again = { 250, 1000, 3000 };
        private readonly Dictionary<(int Pid, long Created), (DateTime Seen, int Next)> _young = new Dictionary<(int, long), (DateTime, int)>();

        private ProcessListEvents(string why, Action<string>? log)
        {
            _why = why;
            _log = log;
            _buffer = Marshal.AllocHGlobal(_size);
        }

        /// <summary>Null when the process list cannot be read either.</summary>
        public static ProcessListEvents? TryOpen(string why, Action<string>? log)
        {
            var events = new ProcessListEvents(why, log);
            // Twice: the first read pays for first calls and page faults, and would set the period too long.
            string? error = events.Read(events._known);
            events._readMs = 0;
            if (error == null) error = events.Read(events._known);
            if (error == null) return events;
            log?.Invoke("process list unreadable: " + error);
            events.Dispose();
            return null;
        }

        public string Description =>
            "the process list every " + Period.TotalMilliseconds.ToString("0", System.Globalization.CultureInfo.InvariantCulture) + " ms (one read: "
            + _readMs.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + " ms; no ETW: " + _why + ")";

        /// <summary>Late loads are not seen here; the passes find them.</summary>
        public void WatchModules(IEnumerable<string> moduleNames, IEnumerable<string> knownPaths) { }

        public IReadOnlyCollection<ProcessEvent> Wait(TimeSpan timeout, CancellationToken cancel)
        {
            var until = DateTime.UtcNow + timeout;
            var result = new List<ProcessEvent>();
            while (!cancel.IsCancellationRequested)
            {
                string? error = Read(_next);
                var now = DateTime.UtcNow;
                if (error == null)
                {
                    foreach (var p in _next)
                    {
                        if (_known.Contains(p) || p.Pid == _self || result.Count >= ProcessEventLimits.MaxPending) continue;
                        result.Add(new ProcessEvent(p.Pid, ProcessEventKind.Started));
                        if (_young.Count < ProcessEventLimits.MaxPending) _young[p] = (now, 0);
                    }
                    (_known, _next) = (_next, _known);
                    _lastError = null;
                }
                else if (error != _lastError)
                {
                    _log?.Invoke("process list unreadable (the passes go on): " + error);
                    _lastError = error;
                }
                if (_young.Count > 0)
                foreach (var y in new List<KeyValuePair<(int Pid, long Created), (DateTime Seen, int Next)>>(_young))
                {
                    if (!_known.Contains(y.Key)) { _young.Remove(y.Key); continue; }
                    if ((now - y.Value.Seen).TotalMilliseconds < Again[y.Value.Next]) continue;
                    if (result.Count < ProcessEventLimits.MaxPending) result.Add(new ProcessEvent(y.Key.Pid, ProcessEventKind.Started));
                    if (y.Value.Next + 1 < Again.Length) _young[y.Key] = (y.Value.Seen, y.Value.Next + 1);
                    else _young.Remove(y.Key);
                }
                if (result.Count > 0) break;
                var left = until - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) break;
                if (cancel.WaitHandle.WaitOne(left < Period ? left : Period)) break;
            }
            return result;
        }

        /// <summary>Fills <paramref name="into"/> with the running processes; null, or what went wrong.</summary>
        private string? Read(HashSet<(int Pid, long Created)> into)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            try { return ReadList(into); }
            finally
            {
                double ms = clock.Elapsed.TotalMilliseconds;
                // The first read sets the figure; later ones move it a quarter of the way, so one slow read (a busy machine) does not stretch the period at once.
                _readMs = _readMs == 0 ? ms : _readMs + (ms - _readMs) / 4;
            }
        }

        private string? ReadList(HashSet<(int Pid, long Created)> into)
        {
            int status;
            while (true)
            {
                status = Win32.NtQuerySystemInformation(Win32.SystemProcessInformation, _buffer, _size, out int needed);
                if (status != Win32.STATUS_INFO_LENGTH_MISMATCH) break;
                // Processes start between the two calls: some room beyond what was asked.
                long want = Math.Max((long)_size * 2, (long)needed + (64 << 10));
                if (want > MaxBuffer) return "the process list is over " + (MaxBuffer >> 20) + " MB";
                Marshal.FreeHGlobal(_buffer);
                _buffer = IntPtr.Zero;
                _buffer = Marshal.AllocHGlobal((int)want);
                _size = (int)want;
            }
            if (status != 0) return "NtQuerySystemInformation: status 0x" + status.ToString("X8", System.Globalization.CultureInfo.InvariantCulture);

            into.Clear();
            byte* b = (byte*)_buffer;
            int pidAt = Win32.SpiUniqueProcessId, entryMin = pidAt + IntPtr.Size;
            long offset = 0;
            for (int n = 0; n < 1 << 20; n++)
            {
                if (offset < 0 || offset + entryMin > _size) return "NtQuerySystemInformation: an entry past the end of its buffer";
                byte* e = b + offset;
                long pid = IntPtr.Size == 8 ? *(long*)(e + pidAt) : *(int*)(e + pidAt);
                // Id 0 is the idle process, never a target.
                if (pid > 0 && pid <= int.MaxValue) into.Add(((int)pid, *(long*)(e + Win32.SpiCreateTime)));
                uint next = *(uint*)(e + Win32.SpiNextEntryOffset);
                if (next == 0) return null;
                offset += next;
            }
            return "NtQuerySystemInformation: too many entries";
        }

        public void Dispose()
        {
            if (_buffer != IntPtr.Zero) Marshal.FreeHGlobal(_buffer);
            _buffer = IntPtr.Zero;
        }
    }
}
