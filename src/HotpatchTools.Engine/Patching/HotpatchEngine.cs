using System.Diagnostics;
using System.Runtime.InteropServices;
using HotpatchTools.Engine.Audit;
using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Platform;

namespace HotpatchTools.Engine.Patching
{
    /// <summary>
    /// Installs, lists and removes micropatches in live processes. Every method runs synchronously on the
    /// calling thread (ptrace ties a stopped thread to the OS thread that stopped it).
    /// </summary>
    public sealed class HotpatchEngine
    {
        private readonly IProcessPlatform _platform;
        private readonly EngineOptions _options;
        private readonly Installer _installer;
        private readonly Uninstaller _uninstaller;

        public HotpatchEngine(IProcessPlatform? platform = null, EngineOptions? options = null)
        {
            _platform = platform ?? CurrentPlatform();
            _options = options ?? new EngineOptions();
            _installer = new Installer(_platform, _options, Audit);
            _uninstaller = new Uninstaller(_platform, _options);
        }

        public IProcessPlatform Platform => _platform;

        public static IProcessPlatform CurrentPlatform()
        {
            if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
                return new Platform.Windows.WindowsPlatform();
            if (RuntimeInformation.IsOSPlatform(OSPlatform.Linux) && RuntimeInformation.ProcessArchitecture == Architecture.X64)
                return new Platform.Linux.LinuxPlatform();
            throw new HotpatchException(HotpatchErrorKind.PlatformNotSupported,
                "HotpatchTools supports Windows and Linux x64; this is " + RuntimeInformation.OSDescription + " (" + RuntimeInformation.ProcessArchitecture + ").");
        }

        private void Log(string message)
        {
            if (_options.Log != null) WorkerOutput.Emit(() => _options.Log?.Invoke(message));
        }

        /// <summary>How many caves a process may hold before it is reported as forging them (see <see cref="CaveReader"/>).</summary>
        internal const int MaxCavesPerProcess = CaveReader.MaxCavesPerProcess;

        internal static readonly int Self = Process.GetCurrentProcess().Id;

        // ---- discovery ----

        /// <summary>
        /// One status per running process that has the patch's module loaded. Named processes go through
        /// <see cref="Inspect"/>, which reports each one, module or not.
        /// </summary>
        public IEnumerable<TargetStatus> Scan(Micropatch patch, Action<int, int>? progress = null)
        {
            var pids = _platform is IModuleProcessFilter filter
                ? filter.ListProcessesWithModule(patch.Target.Module, patch.Target.Os == TargetOs.Windows)
                : _platform.ListProcesses();
            var denied = new List<string>();
            int done = 0;
            // Each process is inspected on its own, so several at once; statuses, warnings and progress come in pid order.
            foreach (var o in OrderedWorkers.Run(pids, p => SweepOne(patch, p.Id), Math.Max(1, Math.Min(Workers, pids.Count))))
            {
                progress?.Invoke(done++, pids.Count);
                if (o.Result == null) continue;
                denied.AddRange(o.Result.Denied);
                if (o.Result.Status != null) yield return o.Result.Status;
            }
            WarnUnreadable(denied);
        }

        private sealed class Swept
        {
            public TargetStatus? Status;
            public readonly List<string> Denied = new List<string>();
        }

        private Swept SweepOne(Micropatch patch, int pid)
        {
            var swept = new Swept();
            // A process that exits while the machine is swept is simply no longer a target.
            try { swept.Status = Inspect(patch, pid, includeNotLoaded: false, denied: swept.Denied); }
            catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.ProcessExited || e.Kind == HotpatchErrorKind.ProcessNotFound) { }
            // One hostile process must not end (or hide the rest of) a sweep.
            catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.SuspiciousProcess) { Warn(e.Message); }
            return swept;
        }

        private int Workers => _options.Workers > 0 ? _options.Workers : Environment.ProcessorCount;

        /// <summary>
        /// Runs `work` (engine calls such as <see cref="Install(Micropatch, TargetStatus)"/> or <see cref="Uninstall"/>) for
        /// each item on up to <see cref="EngineOptions.Workers"/> threads, one item's work whole on one thread. Outcomes come
        /// in the items' order, on the enumerating thread, and so does everything the engine reports meanwhile (log lines,
        /// warnings, audit records), each item's just before its outcome. Items are taken from `items` on the enumerating
        /// thread, a few ahead of the outcomes. A <see cref="HotpatchException"/> is that item's outcome; any other
        /// exception ends the run and is thrown here once the work under way has ended.
        /// </summary>
        /// <param name="oneAtATime">
        /// Everything on the enumerating thread: an item is taken, worked on and given back before the next is taken, so a
        /// caller that asks a question while taking an item (a confirmation prompt) has each answer acted on before the next.
        /// </param>
        public IEnumerable<FleetOutcome<TItem, TResult>> RunEach<TItem, TResult>(IEnumerable<TItem> items, Func<TItem, TResult?> work, bool oneAtATime = false)
            where TResult : class =>
            OrderedWorkers.Run(items, work, oneAtATime ? 1 : Workers);

        private void Warn(string message)
        {
            if (_options.Warn != null) WorkerOutput.Emit(() => _options.Warn?.Invoke(message)); else Log(message);
        }

        /// <summary>One warning with the count of processes a sweep could not read; their names go to the log (-Verbose).</summary>
        public void WarnUnreadable(IReadOnlyCollection<string> processes)
        {
            if (processes.Count == 0) return;
            Log("could not read: " + string.Join(", ", processes));
            Warn(processes.Count + " process(es) could not be read (not elevated, or protected); this sweep does not cover them.");
        }

        /// <param name="denied">In a sweep, collects "pid (name)" of each process that could not be read instead of a log line.</param>
        public TargetStatus? Inspect(Micropatch patch, int pid, bool includeNotLoaded = true, ICollection<string>? denied = null) =>
            _installer.Prepare(patch, pid, includeNotLoaded, denied, keepOpen: false)?.Status;

        /// <summary>
        /// <see cref="Inspect"/> for an install that may follow at once: a Vulnerable target stays open, and
        /// <see cref="Install(Micropatch, TargetStatus)"/> with its <see cref="PreparedInstall.Status"/> re-checks this
        /// plan instead of opening and planning again. Dispose it when done.
        /// </summary>
        public PreparedInstall? Prepare(Micropatch patch, int pid, bool includeNotLoaded = true) =>
            _installer.Prepare(patch, pid, includeNotLoaded, null, keepOpen: true);

        // ---- installed state, read from the process ----

        public IReadOnlyList<InstalledPatch> GetInstalled(int pid)
        {
            using var target = _platform.Open(pid);
            return CaveReader.FindCaves(target).Select(c => CaveReader.Describe(target, c)).ToList();
        }

        // ---- install and uninstall, each audited whatever its outcome ----

        public InstallResult Install(Micropatch patch, int pid) => Install(patch, pid, null);

        /// <summary>Installs into the process of a status that <see cref="Inspect"/>, <see cref="Scan"/> or <see cref="Prepare"/> found Vulnerable, using the plan made then while it still holds.</summary>
        public InstallResult Install(Micropatch patch, TargetStatus status) => Install(patch, status.ProcessId, status.Prepared);

        private InstallResult Install(Micropatch patch, int pid, PreparedInstall? prepared)
        {
            var record = new AuditRecord
            {
                Action = AuditAction.Install, PatchId = patch.Id, FileSha256 = patch.FileSha256, Path = patch.SourceName, ProcessId = pid,
                Module = patch.Target.Module, Signer = patch.Signature?.Signer, Thumbprint = patch.Signature?.Thumbprint,
                SignatureStatus = patch.Signature?.Status.ToString() ?? "NotChecked",
            };
            try
            {
                var result = _installer.Install(patch, pid, prepared, record);
                record.Result = AuditResult.Installed;
                record.ProcessName = result.Patch.ProcessName;
                record.Module = result.Patch.Module;
                Audit(record);
                return result;
            }
            catch (Exception e)
            {
                Audit(Failed(record, e));
                throw;
            }
        }

        public UninstallResult Uninstall(int pid, string patchId)
        {
            var record = new AuditRecord { Action = AuditAction.Uninstall, PatchId = patchId, ProcessId = pid };
            try
            {
                var result = _uninstaller.Uninstall(pid, patchId, record);
                record.Result = AuditResult.Removed;
                Audit(record);
                return result;
            }
            catch (Exception e)
            {
                Audit(Failed(record, e));
                throw;
            }
        }

        private static AuditRecord Failed(AuditRecord record, Exception e)
        {
            var kind = (e as HotpatchException)?.Kind;
            record.Result = AuditRecord.ResultFor(kind);
            record.ErrorId = kind?.ToString() ?? e.GetType().Name;
            record.Error = e.Message;
            return record;
        }

        private void Audit(AuditRecord record)
        {
            if (_options.Audit == null) return;
            WorkerOutput.Emit(() =>
            {
                try { _options.Audit?.Invoke(record); }
                catch (Exception e) { _options.Log?.Invoke("audit record not written: " + e.Message); }
            }, audit: true);
        }
    }
}
