using System.Runtime.InteropServices;
using System.Threading;

namespace HotpatchTools.Engine.Platform.Windows
{
    /// <summary>
    /// Process events on Windows: a real-time ETW session of its own on Microsoft-Windows-Kernel-Process, for
    /// processes started (event 1, ProcessStart) and images loaded (event 5, ImageLoad: the loader at start and
    /// LoadLibrary later), the latter kept only for the module names being enforced. Needs an administrator (or
    /// Performance Log Users), as the watch does anyway. Where the session cannot be had (not elevated, Wine, an
    /// old system) <see cref="TryOpen"/> returns null with the reason, and the platform falls back to polling the
    /// process list (<see cref="ProcessListEvents"/>). Every event is bounds-checked before use.
    /// </summary>
    internal sealed unsafe class WindowsProcessEvents : IProcessEvents
    {
        /// <summary>Sessions are named after the watcher's process id: two watchers never stop each other's, and one left by a killed watcher is recognised.</summary>
        private const string SessionPrefix = "HotpatchTools-Watch-";
        private const ushort ProcessStartId = 1, ImageLoadId = 5;
        private const int MaxNames = 1024;
        /// <summary>How long the session may hold an event before handing it over (EVENT_TRACE_USE_MS_FLUSH_TIMER; the default is a second).</summary>
        private const uint FlushMilliseconds = 20;
        /// <summary>Room for a session name in EVENT_TRACE_PROPERTIES (ETW's limit is 1024 characters), and for a log file name after it.</summary>
        private const int NameRoom = 1024 * 2;

        private readonly object _gate = new object();
        private readonly Dictionary<int, ProcessEventKind> _pending = new Dictionary<int, ProcessEventKind>();
        private readonly HashSet<string> _names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        private readonly int _self = Win32.GetCurrentProcessId();
        private readonly Action<string>? _log;
        private readonly string _name;
        private ulong _trace = ulong.MaxValue;
        private bool _sessionStarted, _overflowing, _disposed;
        private string? _ended;
        private IntPtr _logfile, _loggerName;
        private Win32.EventRecordCallback? _callback;
        private GCHandle _callbackPin;
        private Thread? _thread;

        private WindowsProcessEvents(Action<string>? log)
        {
            _log = log;
            _name = SessionPrefix + _self.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        /// <summary>Null when no session can be opened; <paramref name="reason"/> then names the call that failed and its error.</summary>
        public static WindowsProcessEvents? TryOpen(Action<string>? log, out string? reason)
        {
            var events = new WindowsProcessEvents(log);
            reason = events.Open();
            if (reason == null) return events;
            events.Dispose();
            return null;
        }

        public string Description
        {
            get { lock (_gate) return "ETW session " + _name + " (Microsoft-Windows-Kernel-Process: process starts, image loads of " + _names.Count + " module name(s))"; }
        }

        private string? Open()
        {
            StopStaleSessions();
            int rc = StartSession();
            if (rc == Win32.ERROR_ALREADY_EXISTS)
            {
                // Ours by name: left by a killed watcher whose process id this one now has.
                StopSession(_name);
                rc = StartSession();
            }
            if (rc != 0) return "StartTraceW: " + Win32.Message(rc);
            _sessionStarted = true;

            var provider = Win32.KernelProcessProvider;
            rc = Win32.EnableTraceEx2(SessionHandle, ref provider, Win32.EVENT_CONTROL_CODE_ENABLE_PROVIDER, Win32.TRACE_LEVEL_INFORMATION,
                Win32.KeywordProcess | Win32.KeywordImage, 0, 0, IntPtr.Zero);
            if (rc != 0) return "EnableTraceEx2 (Microsoft-Windows-Kernel-Process): " + Win32.Message(rc);

            _callback = OnEvent;
            _callbackPin = GCHandle.Alloc(_callback);
            _logfile = Marshal.AllocHGlobal(Win32.LogfileSize);
            new Span<byte>((void*)_logfile, Win32.LogfileSize).Clear();
            _loggerName = Marshal.StringToHGlobalUni(_name);
            Marshal.WriteIntPtr(_logfile, Win32.LogfileLoggerName, _loggerName);
            Marshal.WriteInt32(_logfile, Win32.LogfileProcessTraceMode, unchecked((int)(Win32.PROCESS_TRACE_MODE_REAL_TIME | Win32.PROCESS_TRACE_MODE_EVENT_RECORD)));
            Marshal.WriteIntPtr(_logfile, Win32.LogfileEventRecordCallback, Marshal.GetFunctionPointerForDelegate(_callback));
            ulong trace = Win32.OpenTraceW(_logfile);
            if (Win32.IsInvalidTrace(trace)) return "OpenTraceW: " + Win32.Message(Marshal.GetLastWin32Error());
            _trace = trace;

            _thread = new Thread(Consume) { IsBackground = true, Name = "ETW process events" };
            _thread.Start();
            return null;
        }

        private ulong SessionHandle { get; set; }

        private int StartSession()
        {
            var props = Properties();
            try
            {
                // Real time only: no log file name (an empty one would be a file name).
                Marshal.WriteInt32(props, Win32.EtpLogFileNameOffset, 0);
                // The session's own GUID, not the provider's.
                Marshal.StructureToPtr(Guid.NewGuid(), props + Win32.EtpWnodeGuid, false);
                Marshal.WriteInt32(props, Win32.EtpWnodeFlags, unchecked((int)Win32.WNODE_FLAG_TRACED_GUID));
                Marshal.WriteInt32(props, Win32.EtpWnodeClientContext, 1); // QPC time stamps
                Marshal.WriteInt32(props, Win32.EtpBufferSize, 16);         // KB: starts are small and rare
                Marshal.WriteInt32(props, Win32.EtpMinimumBuffers, 4);
                Marshal.WriteInt32(props, Win32.EtpMaximumBuffers, 32);
                Marshal.WriteInt32(props, Win32.EtpLogFileMode, unchecked((int)(Win32.EVENT_TRACE_REAL_TIME_MODE | Win32.EVENT_TRACE_USE_MS_FLUSH_TIMER)));
                Marshal.WriteInt32(props, Win32.EtpFlushTimer, (int)FlushMilliseconds);
                int rc = Win32.StartTraceW(out ulong handle, _name, props);
                if (rc == 0) SessionHandle = handle;
                return rc;
            }
            finally { Marshal.FreeHGlobal(props); }
        }

        /// <summary>A zeroed EVENT_TRACE_PROPERTIES with room for the session name and a log file name after it, where ETW writes them back.</summary>
        private static IntPtr Properties()
        {
            int size = Win32.EtpSize + 2 * NameRoom;
            var p = Marshal.AllocHGlobal(size);
            new Span<byte>((void*)p, size).Clear();
            Marshal.WriteInt32(p, Win32.EtpWnodeBufferSize, size);
            Marshal.WriteInt32(p, Win32.EtpLoggerNameOffset, Win32.EtpSize);
            Marshal.WriteInt32(p, Win32.EtpLogFileNameOffset, Win32.EtpSize + NameRoom);
            return p;
        }

        private static int StopSession(string name)
        {
            var props = Properties();
            try { return Win32.ControlTraceW(0, name, props, Win32.EVENT_TRACE_CONTROL_STOP); }
            finally { Marshal.FreeHGlobal(props); }
        }

        /// <summary>
        /// A real-time session outlives the process that started it, and a machine has only 64: the sessions of
        /// watchers that are gone (killed, crashed) are stopped before this one starts.
        /// </summary>
        private void StopStaleSessions()
        {
            const int Slots = 64;
            int size = Win32.EtpSize + 2 * NameRoom;
            var buffers = new IntPtr[Slots];
            try
            {
                for (int i = 0; i < Slots; i++) buffers[i] = Properties();
                // ERROR_MORE_DATA: more sessions than slots; the first 64 are still filled in.
                int rc = Win32.QueryAllTracesW(buffers, Slots, out uint count);
                if (rc != 0 && rc != Win32.ERROR_MORE_DATA) return;
                for (int i = 0; i < Math.Min(count, (uint)Slots); i++)
                {
                    int offset = Marshal.ReadInt32(buffers[i], Win32.EtpLoggerNameOffset);
                    if (offset < Win32.EtpSize || offset > size - 2) continue;
                    string name = NulTerminated((char*)((byte*)buffers[i] + offset), (size - offset) / 2);
                    if (!name.StartsWith(SessionPrefix, StringComparison.Ordinal)) continue;
                    if (!int.TryParse(name.Substring(SessionPrefix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int pid)) continue;
                    if (pid != _self && IsRunning(pid)) continue;
                    int stopped = StopSession(name);
                    _log?.Invoke("ETW: stopped the session " + name + " of a watcher that is gone" + (stopped == 0 ? "" : " (failed: " + Win32.Message(stopped) + ")"));
                }
            }
            finally
            {
                foreach (var b in buffers) if (b != IntPtr.Zero) Marshal.FreeHGlobal(b);
            }
        }

        private static bool IsRunning(int pid)
        {
            const uint PROCESS_QUERY_LIMITED_INFORMATION = 0x1000;
            IntPtr h = Win32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, false, pid);
            // Anything but "no such process" counts as running: a session is stopped only when surely abandoned.
            if (h == IntPtr.Zero) return Marshal.GetLastWin32Error() != Win32.ERROR_INVALID_PARAMETER;
            try { return !Win32.GetExitCodeProcess(h, out uint code) || code == Win32.STILL_ACTIVE; }
            finally { Win32.CloseHandle(h); }
        }

        private static string NulTerminated(char* s, int max)
        {
            int n = 0;
            while (n < max && s[n] != '\0') n++;
            return new string(s, 0, n);
        }

        private void Consume()
        {
            int rc;
            try { rc = Win32.ProcessTrace(new[] { _trace }, 1, IntPtr.Zero, IntPtr.Zero); }
            catch (Exception e) { rc = -1; Defer("ETW: ProcessTrace threw " + e.GetType().Name + ": " + e.Message); }
            lock (_gate)
            {
                _ended = "ProcessTrace returned " + (rc == -1 ? "an exception" : Win32.Message(rc));
                Monitor.PulseAll(_gate);
            }
        }

        /// <summary>On the ProcessTrace thread; nothing may escape it (an exception here would end the watcher's process).</summary>
        private void OnEvent(IntPtr record)
        {
            try
            {
                var e = Parse(record, IsWatched);
                if (e is ProcessEvent ev) Add(ev.ProcessId, ev.Kind);
            }
            catch (Exception e)
            {
                Defer("ETW: event skipped: " + e.GetType().Name + ": " + e.Message);
            }
        }

        private bool IsWatched(string file)
        {
            lock (_gate) return _names.Contains(file);
        }

        /// <summary>
        /// What one EVENT_RECORD says: a process started, a process loaded an image whose file name <paramref name="watched"/>
        /// accepts, or nothing. Every length comes from the record and is checked before a byte is read.
        /// </summary>
        internal static ProcessEvent? Parse(IntPtr record, Func<string, bool> watched)
        {
            if (record == IntPtr.Zero) return null;
            byte* r = (byte*)record;
            if (*(Guid*)(r + Win32.ErProviderId) != Win32.KernelProcessProvider) return null;
            ushort id = *(ushort*)(r + Win32.ErEventId);
            int length = *(ushort*)(r + Win32.ErUserDataLength);
            byte* data = *(byte**)(r + Win32.ErUserData);
            if (data == null) return null;
            if (id == ProcessStartId)
            {
                // ProcessStart (every version): ProcessID (UInt32) first. The header's ProcessId is the parent's.
                return length >= 4 ? new ProcessEvent(*(int*)data, ProcessEventKind.Started) : (ProcessEvent?)null;
            }
            if (id != ImageLoadId) return null;
            // ImageLoad: ImageBase, ImageSize (pointers of the logging kernel), ProcessID, ImageCheckSum,
            // TimeDateStamp (UInt32), DefaultBase (pointer), ImageName (NUL-terminated UTF-16).
            int pointer = (*(ushort*)(r + Win32.ErFlags) & Win32.EVENT_HEADER_FLAG_32_BIT_HEADER) != 0 ? 4 : 8;
            int pidAt = 2 * pointer, nameAt = 3 * pointer + 12;
            if (length < nameAt + 2) return null;
            string? file = FileName((char*)(data + nameAt), (length - nameAt) / 2);
            if (file == null || !watched(file)) return null;
            return new ProcessEvent(*(int*)(data + pidAt), ProcessEventKind.OpenedModule);
        }

        /// <summary>The last component of a path of at most <paramref name="max"/> characters (\Device\HarddiskVolume3\...\x.dll), or null.</summary>
        private static string? FileName(char* path, int max)
        {
            int end = 0;
            while (end < max && path[end] != '\0') end++;
            int start = end;
            while (start > 0 && path[start - 1] != '\\' && path[start - 1] != '/') start--;
            int n = end - start;
            return n == 0 || n > 260 ? null : new string(path, start, n);
        }

        /// <summary>
        /// A message from the ProcessTrace thread, written to the log by the next <see cref="Wait"/>: the log belongs to
        /// the watch's thread (a cmdlet's WriteDebug throws on any other). A few are kept; a flood of them is one.
        /// </summary>
        private void Defer(string message)
        {
            lock (_gate)
            {
                if (_deferred.Count < 8) _deferred.Add(message);
            }
        }

        private readonly List<string> _deferred = new List<string>();

        private void FlushDeferred()
        {
            string[] messages;
            lock (_gate)
            {
                if (_deferred.Count == 0) return;
                messages = _deferred.ToArray();
                _deferred.Clear();
            }
            foreach (var m in messages) _log?.Invoke(m);
        }

        private void Add(int pid, ProcessEventKind kind)
        {
            if (pid <= 0 || pid == _self) return;
            lock (_gate)
            {
                if (_pending.TryGetValue(pid, out var had))
                {
                    // A module loaded says more than a start: it asks for the closer follow-up.
                    if (kind == ProcessEventKind.OpenedModule && had != kind) _pending[pid] = kind;
                    return;
                }
                if (_pending.Count >= ProcessEventLimits.MaxPending)
                {
                    // The next pass finds what is dropped here, as on Linux.
                    if (!_overflowing) Defer("ETW: " + ProcessEventLimits.MaxPending + " processes pending; the others wait for the next pass");
                    _overflowing = true;
                    return;
                }
                _pending[pid] = kind;
                Monitor.PulseAll(_gate);
            }
        }

        public void WatchModules(IEnumerable<string> moduleNames, IEnumerable<string> knownPaths)
        {
            lock (_gate)
            {
                // A module name is a file name; the event names the file by its full path.
                foreach (var name in moduleNames)
                    if (name.Length > 0 && name.IndexOf('\\') < 0 && name.IndexOf('/') < 0) Watch(name);
                foreach (var path in knownPaths) Watch(Path.GetFileName(path));
            }

            void Watch(string name)
            {
                if (string.IsNullOrEmpty(name) || _names.Contains(name)) return;
                if (_names.Count < MaxNames) _names.Add(name);
                else if (_deferred.Count < 8) _deferred.Add("ETW: " + MaxNames + " module names watched; " + name + " is not");
            }
        }

        public IReadOnlyCollection<ProcessEvent> Wait(TimeSpan timeout, CancellationToken cancel)
        {
            FlushDeferred();
            try { return WaitForEvents(timeout, cancel); }
            finally { FlushDeferred(); }
        }

        private IReadOnlyCollection<ProcessEvent> WaitForEvents(TimeSpan timeout, CancellationToken cancel)
        {
            var until = DateTime.UtcNow + timeout;
            lock (_gate)
            {
                while (_pending.Count == 0 && !cancel.IsCancellationRequested)
                {
                    if (_ended != null) throw new IOException("the ETW session ended: " + _ended);
                    var left = until - DateTime.UtcNow;
                    if (left <= TimeSpan.Zero) break;
                    // Wake at least every 200 ms to notice a cancellation.
                    Monitor.Wait(_gate, left < TimeSpan.FromMilliseconds(200) ? left : TimeSpan.FromMilliseconds(200));
                }
                var result = new List<ProcessEvent>(_pending.Count);
                foreach (var e in _pending) result.Add(new ProcessEvent(e.Key, e.Value));
                _pending.Clear();
                _overflowing = false;
                return result;
            }
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            // Closing the trace ends ProcessTrace; stopping the session frees it for the machine.
            if (!Win32.IsInvalidTrace(_trace)) Win32.CloseTrace(_trace);
            if (_sessionStarted) StopSession(_name);
            bool ended = _thread == null || _thread.Join(TimeSpan.FromSeconds(5));
            // A ProcessTrace still running may still call back and read the log file structure: both stay then.
            if (!ended) { _log?.Invoke("ETW: ProcessTrace did not end within 5 s of closing the trace"); return; }
            if (_callbackPin.IsAllocated) _callbackPin.Free();
            if (_logfile != IntPtr.Zero) Marshal.FreeHGlobal(_logfile);
            if (_loggerName != IntPtr.Zero) Marshal.FreeHGlobal(_loggerName);
            _logfile = _loggerName = IntPtr.Zero;
        }
    }
}
