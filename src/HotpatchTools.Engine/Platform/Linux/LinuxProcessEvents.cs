using System.Runtime.InteropServices;
using System.Threading;

namespace HotpatchTools.Engine.Platform.Linux
{
    /// <summary>
    /// Process events on Linux: the kernel's process connector (netlink, PROC_EVENT_EXEC) for programs started,
    /// and fanotify FAN_OPEN marks on the module files of the patches being enforced for libraries loaded (by the
    /// dynamic loader at start, or by dlopen later). Both need root (CAP_NET_ADMIN, CAP_SYS_ADMIN); where either
    /// cannot be had the other still works, and where neither can, there is no event source and the watch polls.
    /// Everything read from the kernel is bounds-checked before use.
    /// </summary>
    internal sealed unsafe class LinuxProcessEvents : IProcessEvents
    {
        private const int CnIdxProc = 1, CnValProc = 1, ProcCnMcastListen = 1, ProcCnMcastIgnore = 2;
        private const int NlMsgHdrLength = 16, CnMsgLength = 20, NlmsgDone = 3;
        private const uint ProcEventExec = 0x2;
        /// <summary>Files marked: each mark pins an inode in the kernel.</summary>
        private const int MaxMarks = 1024;

        private int _netlink = -1, _fanotify = -1;
        private readonly HashSet<string> _marked = new HashSet<string>(StringComparer.Ordinal);
        private readonly Dictionary<int, ProcessEventKind> _pending = new Dictionary<int, ProcessEventKind>();
        private readonly int _self = LibC.getpid();
        private readonly Action<string>? _log;
        private readonly byte[] _buffer = new byte[16384];

        private LinuxProcessEvents(Action<string>? log) { _log = log; }

        /// <summary>Null when neither source can be opened (not root, or a kernel or sandbox without them).</summary>
        public static LinuxProcessEvents? TryOpen(Action<string>? log)
        {
            var events = new LinuxProcessEvents(log);
            events.OpenConnector();
            events.OpenFanotify();
            if (events._netlink < 0 && events._fanotify < 0)
            {
                events.Dispose();
                return null;
            }
            return events;
        }

        public string Description =>
            (_netlink >= 0 ? "process connector" : "no process connector") + ", " + (_fanotify >= 0 ? "fanotify on " + _marked.Count + " module file(s)" : "no fanotify");

        private void OpenConnector()
        {
            int fd = LibC.socket(LibC.AF_NETLINK, LibC.SOCK_DGRAM | LibC.SOCK_CLOEXEC | LibC.SOCK_NONBLOCK, LibC.NETLINK_CONNECTOR);
            if (fd < 0) { _log?.Invoke("process connector unavailable: socket: errno " + Marshal.GetLastWin32Error()); return; }
            // sockaddr_nl: family, pad, pid (0: the kernel assigns one), groups.
            var addr = stackalloc byte[12];
            new Span<byte>(addr, 12).Clear();
            *(ushort*)addr = LibC.AF_NETLINK;
            *(uint*)(addr + 8) = CnIdxProc;
            if (LibC.bind(fd, addr, 12) != 0 || !SendListen(fd, ProcCnMcastListen))
            {
                _log?.Invoke("process connector unavailable: errno " + Marshal.GetLastWin32Error());
                LibC.close(fd);
                return;
            }
            _netlink = fd;
        }

        private static bool SendListen(int fd, int op)
        {
            const int Length = NlMsgHdrLength + CnMsgLength + 4;
            var msg = stackalloc byte[Length];
            new Span<byte>(msg, Length).Clear();
            *(uint*)msg = Length;
            *(ushort*)(msg + 4) = NlmsgDone;
            *(uint*)(msg + NlMsgHdrLength) = CnIdxProc;
            *(uint*)(msg + NlMsgHdrLength + 4) = CnValProc;
            *(ushort*)(msg + NlMsgHdrLength + 16) = 4;
            *(int*)(msg + NlMsgHdrLength + CnMsgLength) = op;
            return (long)LibC.send(fd, msg, (UIntPtr)Length, 0) == Length;
        }

        private void OpenFanotify()
        {
            int fd = LibC.fanotify_init(LibC.FAN_CLASS_NOTIF | LibC.FAN_CLOEXEC | LibC.FAN_NONBLOCK, (uint)(LibC.O_RDONLY | LibC.O_CLOEXEC));
            if (fd < 0) { _log?.Invoke("fanotify unavailable: errno " + Marshal.GetLastWin32Error()); return; }
            _fanotify = fd;
        }

        /// <summary>Where the dynamic loader finds most libraries; a link there (a SONAME) leads a mark to its file.</summary>
        private static readonly string[] LibraryFolders =
            { "/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu" };

        public void WatchModules(IEnumerable<string> moduleNames, IEnumerable<string> knownPaths)
        {
            if (_fanotify < 0) return;
            var paths = knownPaths.ToList();
            foreach (var name in moduleNames)
                foreach (var dir in LibraryFolders)
                {
                    // A module name is a file name; anything else would not name a file in these folders.
                    if (name.IndexOf('/') >= 0 || name == "." || name == "..") continue;
                    var candidate = Path.Combine(dir, name);
                    if (File.Exists(candidate)) paths.Add(candidate);
                }
            foreach (var path in paths)
            {
                if (_marked.Contains(path)) continue;
                if (_marked.Count >= MaxMarks) { _log?.Invoke("fanotify: " + MaxMarks + " files marked, no more"); return; }
                // A mark follows a symbolic link to its file: marking the SONAME link marks the library itself.
                if (LibC.fanotify_mark(_fanotify, LibC.FAN_MARK_ADD, LibC.FAN_OPEN, LibC.AT_FDCWD, path) == 0) _marked.Add(path);
                else _log?.Invoke("fanotify: cannot watch " + path + ": errno " + Marshal.GetLastWin32Error());
            }
        }

        public IReadOnlyCollection<ProcessEvent> Wait(TimeSpan timeout, CancellationToken cancel)
        {
            var until = DateTime.UtcNow + timeout;
            var fds = stackalloc LibC.PollFd[2];
            while (_pending.Count == 0 && !cancel.IsCancellationRequested)
            {
                var left = until - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) break;
                // Wake at least every 200 ms to notice a cancellation.
                int wait = (int)Math.Min(Math.Ceiling(left.TotalMilliseconds), 200);
                int n = 0;
                if (_netlink >= 0) fds[n++] = new LibC.PollFd { Fd = _netlink, Events = LibC.POLLIN };
                if (_fanotify >= 0) fds[n++] = new LibC.PollFd { Fd = _fanotify, Events = LibC.POLLIN };
                int ready = LibC.poll(fds, (UIntPtr)n, wait);
                if (ready < 0)
                {
                    if (Marshal.GetLastWin32Error() == LibC.EINTR) continue;
                    throw new IOException("poll on process events failed: errno " + Marshal.GetLastWin32Error());
                }
                for (int i = 0; i < n; i++)
                {
                    if ((fds[i].Revents & LibC.POLLIN) == 0) continue;
                    if (fds[i].Fd == _netlink) DrainConnector();
                    else DrainFanotify();
                }
            }
            var result = new List<ProcessEvent>(_pending.Count);
            foreach (var e in _pending) result.Add(new ProcessEvent(e.Key, e.Value));
            _pending.Clear();
            return result;
        }

        private void Add(int pid, ProcessEventKind kind)
        {
            if (pid <= 0 || pid == _self) return;
            if (_pending.TryGetValue(pid, out var had))
            {
                // A module opened says more than a start: it asks for the closer follow-up.
                if (kind == ProcessEventKind.OpenedModule && had != kind) _pending[pid] = kind;
                return;
            }
            if (_pending.Count >= ProcessEventLimits.MaxPending) return; // the next poll pass finds what is dropped here
            _pending[pid] = kind;
        }

        private void DrainConnector() =>
            Drain(_netlink, NlMsgHdrLength, 4, datagrams: true, (message, length) =>
            {
                // proc_event: what (4), cpu (4), timestamp (8), then for exec: pid, tgid.
                int ev = NlMsgHdrLength + CnMsgLength;
                if (ev + 24 <= length && *(uint*)(message + ev) == ProcEventExec)
                    Add(*(int*)(message + ev + 20), ProcessEventKind.Started);
            });

        private void DrainFanotify() =>
            // fanotify_event_metadata: event_len (4), vers (1), reserved (1), metadata_len (2), mask (8), fd (4), pid (4).
            Drain(_fanotify, 24, 1, datagrams: false, (ev, _) =>
            {
                int fd = *(int*)(ev + 16);
                if (fd >= 0) LibC.close(fd);
                Add(*(int*)(ev + 20), ProcessEventKind.OpenedModule);
            });

        private delegate void RecordHandler(byte* record, uint length);

        /// <summary>
        /// Reads <paramref name="fd"/> (at most 256 reads a pass) and hands each record of a read to <paramref name="handle"/>.
        /// Netlink messages and fanotify events both start with their u32 length, each record padded to
        /// <paramref name="alignment"/>; a length below <paramref name="headerLength"/> or past what was read ends that read.
        /// </summary>
        /// <param name="datagrams">One datagram a read: after each, the socket is asked whether another waits, and drained until none does.</param>
        private void Drain(int fd, int headerLength, uint alignment, bool datagrams, RecordHandler handle)
        {
            fixed (byte* buf = _buffer)
            {
                for (int reads = 0; reads < 256; reads++)
                {
                    long got = (long)LibC.read(fd, buf, (UIntPtr)_buffer.Length);
                    if (got <= 0) return;
                    int off = 0;
                    while (off + headerLength <= got)
                    {
                        uint len = *(uint*)(buf + off);
                        if (len < headerLength || off + len > got) break;
                        handle(buf + off, len);
                        off += (int)((len + alignment - 1) & ~(alignment - 1));
                    }
                    if (datagrams && !HasMore(fd)) return;
                }
            }
        }

        private static bool HasMore(int fd)
        {
            var p = new LibC.PollFd { Fd = fd, Events = LibC.POLLIN };
            return LibC.poll(&p, (UIntPtr)1, 0) > 0 && (p.Revents & LibC.POLLIN) != 0;
        }

        public void Dispose()
        {
            if (_netlink >= 0)
            {
                SendListen(_netlink, ProcCnMcastIgnore);
                LibC.close(_netlink);
                _netlink = -1;
            }
            if (_fanotify >= 0)
            {
                LibC.close(_fanotify);
                _fanotify = -1;
            }
        }
    }
}
