using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Threading;
using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Patching;
using HotpatchTools.Engine.Platform;

namespace HotpatchTools.Engine.Catalog
{
    public enum EnforcementOutcome
    {
        /// <summary>Installed by this pass.</summary>
        Applied,
        /// <summary>Already installed (by an earlier pass, another session or another enforcer).</summary>
        AlreadyPatched,
        /// <summary>Could be installed, but was not: a report-only pass, -WhatIf or a declined confirmation.</summary>
        Vulnerable,
        /// <summary>Another build of the module: identity or expected bytes differ. Never written.</summary>
        Mismatch,
        /// <summary>Refused or failed; Reason and ErrorKind say why.</summary>
        Failed,
        /// <summary>Not installed because a patch that supersedes it is installed in the process.</summary>
        Superseded,
    }

    /// <summary>One patch in one process, as one enforcement pass found or left it.</summary>
    public sealed record EnforcementResult(
        string PatchId, int ProcessId, string ProcessName, string Module, EnforcementOutcome Outcome, string Reason, HotpatchErrorKind? ErrorKind)
    {
        public DateTime TimestampUtc { get; init; } = DateTime.UtcNow;
    }

    public sealed class EnforcementPass
    {
        /// <summary>Every target this pass inspected (in an incremental pass, not the unchanged ones).</summary>
        public IReadOnlyList<EnforcementResult> Results { get; internal set; } = new EnforcementResult[0];
        /// <summary>The results whose outcome differs from the one this enforcer last saw for that process and patch (Applied, then AlreadyPatched, is no change).</summary>
        public IReadOnlyList<EnforcementResult> Changed { get; internal set; } = new EnforcementResult[0];
        public int ProcessCount { get; internal set; }
        /// <summary>Processes whose module list could not be read (not elevated, or protected).</summary>
        public int Unreadable { get; internal set; }
        /// <summary>Process-and-patch pairs skipped because nothing about the process changed since they were settled.</summary>
        public int Unchanged { get; internal set; }
        public bool Full { get; internal set; }
        public TimeSpan Elapsed { get; internal set; }
    }

    /// <summary>
    /// Brings running processes in line with a set of patches: every process that has a patch's module loaded
    /// gets the patch, if it can. Idempotent: what is installed is read from each process, never remembered.
    /// Between passes it remembers one cheap fingerprint per process (start time and the set of mapped module
    /// files), so a watching loop inspects only processes that are new or loaded or unloaded a module.
    /// </summary>
    public sealed class Enforcer
    {
        private readonly HotpatchEngine _engine;
        private readonly Action<string>? _log;
        private readonly Dictionary<int, Memo> _memos = new Dictionary<int, Memo>();
        private readonly Dictionary<int, (string Quick, string PatchSet, View View)> _views = new Dictionary<int, (string, string, View)>();
        private readonly int _self = Process.GetCurrentProcess().Id;
        private DateTime _lastFullUtc = DateTime.MinValue;

        private sealed class Memo
        {
            public string Fingerprint = "";
            public readonly Dictionary<string, EnforcementResult> Last = new Dictionary<string, EnforcementResult>(StringComparer.Ordinal);
            public readonly HashSet<string> Settled = new HashSet<string>(StringComparer.Ordinal);
        }

        public Enforcer(HotpatchEngine engine, Action<string>? log = null)
        {
            _engine = engine;
            _log = log;
        }

        /// <summary>
        /// How often an incremental pass still inspects every target, so that a patch removed by hand or a target
        /// that became installable is noticed although its process did not change.
        /// </summary>
        public TimeSpan FullRecheckInterval { get; set; } = TimeSpan.FromSeconds(60);

        /// <summary>One pass over every running process.</summary>
        /// <param name="apply">False: report only (Vulnerable), never write.</param>
        /// <param name="confirm">Asked before each install; false leaves the target Vulnerable.</param>
        /// <param name="incremental">Skip settled targets of processes whose fingerprint did not change.</param>
        /// <param name="cancel">Ends the pass between two processes (never inside an install); the pass then reports what it did.</param>
        public EnforcementPass Run(IReadOnlyList<Micropatch> patches, bool apply = true, Func<TargetStatus, bool>? confirm = null, bool incremental = false,
            CancellationToken cancel = default)
        {
            var clock = Stopwatch.StartNew();
            var now = DateTime.UtcNow;
            bool full = !incremental || now - _lastFullUtc >= FullRecheckInterval;
            if (full) _lastFullUtc = now;
            var pass = new EnforcementPass { Full = full };
            var results = new List<EnforcementResult>();
            var changed = new List<EnforcementResult>();
            var seen = new HashSet<int>();
            var processes = _engine.Platform.ListProcesses();
            pass.ProcessCount = processes.Count;
            string patchSet = string.Join(",", patches.Select(x => x.Id + "|" + x.FileSha256));
            int unreadable = 0, unchanged = 0;

            foreach (var p in processes)
            {
                if (cancel.IsCancellationRequested) break;
                // ptrace cannot attach to its own process; the host's own modules are the one blind spot (documented).
                if (p.Id == _self) continue;
                var view = LookAt(p, () => LookCached(p.Id, patches, patchSet, full), ref unreadable);
                if (view == null) continue;
                seen.Add(p.Id);

                unchanged += EnforceIn(p, view, full, apply, confirm, results, changed);
            }
            foreach (var gone in _memos.Keys.Where(k => !seen.Contains(k)).ToList()) _memos.Remove(gone);
            foreach (var gone in _views.Keys.Where(k => !seen.Contains(k)).ToList()) _views.Remove(gone);

            pass.Results = results;
            pass.Changed = changed;
            pass.Unreadable = unreadable;
            pass.Unchanged = unchanged;
            pass.Elapsed = clock.Elapsed;
            _log?.Invoke("enforcement pass (" + (full ? "full" : "incremental") + "): " + processes.Count + " processes, " + results.Count + " inspected, " +
                         unchanged + " unchanged, " + unreadable + " unreadable, " + clock.Elapsed.TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture) + " ms");
            return pass;
        }

        /// <summary>The relevant patches in one process, successors first; returns how many were skipped as settled.</summary>
        private int EnforceIn(ProcessInfo p, View view, bool full, bool apply, Func<TargetStatus, bool>? confirm,
            List<EnforcementResult> results, List<EnforcementResult> changed)
        {
            var relevant = view.Relevant;
            if (relevant.Count == 0) { _memos.Remove(p.Id); return 0; }

            if (!_memos.TryGetValue(p.Id, out var memo) || (memo.Fingerprint != view.Fingerprint && !SameProcess(memo.Fingerprint, view.Fingerprint)))
                _memos[p.Id] = memo = new Memo { Fingerprint = view.Fingerprint };
            else if (memo.Fingerprint != view.Fingerprint)
            {
                // The same process mapped or unmapped a module: look again, but what it was is still what it was.
                memo.Fingerprint = view.Fingerprint;
                memo.Settled.Clear();
            }

            int unchanged = 0;
            // Successors first: a patch whose successor holds in this process is never installed there.
            var held = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (var patch in SuccessorsFirst(relevant))
            {
                string key = patch.Id + "|" + patch.FileSha256;
                var successor = Successors(patch, relevant).FirstOrDefault(x => held.Contains(x.Id));
                if (!full && memo.Settled.Contains(key))
                {
                    unchanged++;
                    if (memo.Last.TryGetValue(key, out var settled) && Holds(settled)) held.Add(patch.Id);
                    continue;
                }
                var r = successor != null
                    ? Result(patch, p.Id, p.Name, patch.Target.Module, EnforcementOutcome.Superseded, "Superseded by " + successor.Id + ", which holds in this process.", null)
                    : Enforce(patch, p.Id, apply, confirm);
                if (r == null) continue;
                results.Add(r);
                if (Holds(r)) held.Add(patch.Id);
                if (!memo.Last.TryGetValue(key, out var last) || Patched(last.Outcome) != Patched(r.Outcome) || (!Patched(r.Outcome) && last.Outcome != r.Outcome)) changed.Add(r);
                memo.Last[key] = r;
                if (IsSettled(r)) memo.Settled.Add(key); else memo.Settled.Remove(key);
            }
            return unchanged;
        }

        /// <summary>Use the platform's process events where it has them (the default); false: poll only.</summary>
        public bool UseEvents { get; set; } = true;

        /// <summary>
        /// Runs passes until cancelled: the first one full, then incremental ones every interval. patches is asked
        /// before every pass, so catalog changes take effect without a restart. Runs on the calling thread.
        /// Where the platform reports process events (<see cref="IProcessEvents"/>), a process that starts a program
        /// or opens a module file of a patch is looked at within milliseconds, between the passes; the passes stay,
        /// for what the events do not cover (a module at a path nobody watched, a patch removed by hand).
        /// </summary>
        public void Watch(Func<IReadOnlyList<Micropatch>> patches, TimeSpan interval, Action<EnforcementPass> onPass, CancellationToken cancel,
            Func<TargetStatus, bool>? confirm = null)
        {
            using var events = UseEvents ? (_engine.Platform as IProcessEventPlatform)?.OpenEvents(_log) : null;
            _log?.Invoke(events == null ? "watch: no process events here; polling every " + interval.TotalSeconds + " s" : "watch: process events from " + events.Description);
            IReadOnlyList<Micropatch> current = new Micropatch[0];
            var followUps = new FollowUps();
            var nextPass = DateTime.MinValue;
            while (!cancel.IsCancellationRequested)
            {
                if (DateTime.UtcNow >= nextPass)
                {
                    EnforcementPass? pass = null;
                    try
                    {
                        current = patches();
                        pass = Run(current, apply: true, confirm: confirm, incremental: true, cancel: cancel);
                        events?.WatchModules(current.Select(x => x.Target.Module).Distinct(), ModuleFiles());
                    }
                    // /proc or the catalog briefly unreadable must not end a watch that runs for months; the next pass retries.
                    catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
                    {
                        _log?.Invoke("enforcement pass failed, retrying after the interval: " + e.Message);
                    }
                    if (pass != null) onPass(pass);
                    nextPass = DateTime.UtcNow + interval;
                }
                if (events == null)
                {
                    if (cancel.WaitHandle.WaitOne(interval)) break;
                    continue;
                }

                var now = DateTime.UtcNow;
                var until = followUps.NextDue is DateTime due && due < nextPass ? due : nextPass;
                try
                {
                    foreach (var e in events.Wait(until > now ? until - now : TimeSpan.Zero, cancel)) followUps.Add(e, DateTime.UtcNow);
                }
                catch (IOException e)
                {
                    _log?.Invoke("watch: process events failed, polling from now on: " + e.Message);
                    events.Dispose();
                    WatchByPolling();
                    return;
                }
                var pids = followUps.TakeDue(DateTime.UtcNow);
                if (pids.Count == 0 || current.Count == 0) continue;
                var followUp = RunFor(pids, current, confirm);
                if (followUp.Results.Count > 0) onPass(followUp);
            }

            void WatchByPolling()
            {
                while (!cancel.IsCancellationRequested)
                {
                    if (cancel.WaitHandle.WaitOne(interval)) break;
                    EnforcementPass? pass = null;
                    try { pass = Run(patches(), apply: true, confirm: confirm, incremental: true, cancel: cancel); }
                    catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
                    {
                        _log?.Invoke("enforcement pass failed, retrying after the interval: " + e.Message);
                    }
                    if (pass != null) onPass(pass);
                }
            }
        }

        /// <summary>A pass over the processes that events named: those whose modules changed are inspected again.</summary>
        private EnforcementPass RunFor(IReadOnlyList<int> pids, IReadOnlyList<Micropatch> patches, Func<TargetStatus, bool>? confirm)
        {
            var clock = Stopwatch.StartNew();
            var results = new List<EnforcementResult>();
            var changed = new List<EnforcementResult>();
            int unchanged = 0, unreadable = 0;
            foreach (int pid in pids)
            {
                var p = new ProcessInfo(pid, "");
                var view = LookAt(p, () => Look(pid, patches), ref unreadable);
                if (view == null) continue;
                unchanged += EnforceIn(p, view, full: false, apply: true, confirm, results, changed);
            }
            _log?.Invoke("event follow-up: " + pids.Count + " process(es), " + results.Count + " inspected, " + clock.Elapsed.TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture) + " ms");
            return new EnforcementPass { Results = results, Changed = changed, ProcessCount = pids.Count, Unreadable = unreadable, Unchanged = unchanged, Elapsed = clock.Elapsed };
        }

        /// <summary>
        /// One process's view, or null when it has exited or cannot be read. Never throws for what one process does: a
        /// watch runs for months as root, in full passes and in event follow-ups alike, and whatever one process does to
        /// the reader costs that process, not the watch.
        /// </summary>
        private View? LookAt(ProcessInfo p, Func<View?> look, ref int unreadable)
        {
            try { return look(); }
            // A process whose memory map is too large to read whole is as unknown as one that is denied to us: counted,
            // not passed over as if it had exited.
            catch (HotpatchException e) when (e.Kind is HotpatchErrorKind.AccessDenied or HotpatchErrorKind.SuspiciousProcess)
            {
                _log?.Invoke("cannot read the modules of process " + p.Id + (p.Name.Length > 0 ? " (" + p.Name + ")" : "") + ": " + e.Message);
                unreadable++;
            }
            catch (HotpatchException e) when (e.Kind is HotpatchErrorKind.ProcessExited or HotpatchErrorKind.ProcessNotFound) { }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _log?.Invoke("process " + p.Id + (p.Name.Length > 0 ? " (" + p.Name + ")" : "") + " skipped: " + e.GetType().Name + ": " + e.Message);
            }
            return null;
        }

        /// <summary>The module files to watch for opens: every file a pass saw mapped under a patch's module name.</summary>
        private IEnumerable<string> ModuleFiles() => _seenModulePaths;

        private readonly HashSet<string> _seenModulePaths = new HashSet<string>(StringComparer.Ordinal);

        /// <summary>
        /// When to look again at a process an event named: at once, then a few times more, because the event comes
        /// before the mapping it announces (exec before the loader maps the libraries, open before mmap).
        /// </summary>
        private sealed class FollowUps
        {
            private static readonly int[] AfterStart = { 0, 10, 100 };
            private static readonly int[] AfterOpen = { 1, 3, 10, 30, 100, 300 };
            /// <summary>Bounded like the event source's own queue: beyond it, the next pass is the follow-up.</summary>
            private const int MaxTracked = 4096;
            private readonly Dictionary<int, (DateTime Since, int[] Schedule, int Next)> _tracked = new Dictionary<int, (DateTime, int[], int)>();

            public void Add(ProcessEvent e, DateTime now)
            {
                var schedule = e.Kind == ProcessEventKind.OpenedModule ? AfterOpen : AfterStart;
                if (_tracked.TryGetValue(e.ProcessId, out var had) && had.Schedule == schedule) return;
                if (_tracked.Count >= MaxTracked && !_tracked.ContainsKey(e.ProcessId)) return;
                _tracked[e.ProcessId] = (now, schedule, 0);
            }

            public DateTime? NextDue =>
                _tracked.Count == 0 ? (DateTime?)null : _tracked.Values.Min(t => t.Since.AddMilliseconds(t.Schedule[t.Next]));

            public List<int> TakeDue(DateTime now)
            {
                var due = new List<int>();
                foreach (var pid in _tracked.Keys.ToList())
                {
                    var t = _tracked[pid];
                    if (t.Since.AddMilliseconds(t.Schedule[t.Next]) > now) continue;
                    due.Add(pid);
                    if (t.Next + 1 < t.Schedule.Length) _tracked[pid] = (t.Since, t.Schedule, t.Next + 1);
                    else _tracked.Remove(pid);
                }
                return due;
            }
        }

        /// <summary>The reason of a Vulnerable result whose install the confirmation declined.</summary>
        public const string NotConfirmed = "Not patched (not confirmed).";

        private EnforcementResult? Enforce(Micropatch patch, int pid, bool apply, Func<TargetStatus, bool>? confirm)
        {
            PreparedInstall? prepared;
            try { prepared = _engine.Prepare(patch, pid, includeNotLoaded: false); }
            catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.ProcessExited || e.Kind == HotpatchErrorKind.ProcessNotFound) { return null; }
            catch (HotpatchException e) { return Result(patch, pid, "", patch.Target.Module, EnforcementOutcome.Failed, e.Message, e.Kind); }
            // A file the engine could not read (a module replaced or removed under it) fails this target, not the pass.
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                return Result(patch, pid, "", patch.Target.Module, EnforcementOutcome.Failed, e.Message, HotpatchErrorKind.Internal);
            }
            // Anything else one process provokes fails that process only: the pass, and a watch, go on.
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return Result(patch, pid, "", patch.Target.Module, EnforcementOutcome.Failed, e.GetType().Name + ": " + e.Message, HotpatchErrorKind.Internal);
            }
            // The install below uses this inspection's plan and open process.
            using var held = prepared;
            var s = prepared?.Status;
            // The module went away between listing and inspection, or the process turned unreadable.
            if (s == null) return null;

            switch (InstallDecision.For(s.State))
            {
                case InstallAction.AlreadyPatched:
                    return Result(patch, s, EnforcementOutcome.AlreadyPatched, s.Reason, null);
                case InstallAction.Superseded:
                    return Result(patch, s, EnforcementOutcome.Superseded, s.Reason, null);
                case InstallAction.OtherBuild:
                    return Result(patch, s, EnforcementOutcome.Mismatch, s.Reason, s.ErrorKind);
                case InstallAction.Install:
                    if (!apply) return Result(patch, s, EnforcementOutcome.Vulnerable, "Not patched: " + s.Reason, null);
                    if (confirm != null && !confirm(s)) return Result(patch, s, EnforcementOutcome.Vulnerable, NotConfirmed, null);
                    try
                    {
                        var r = _engine.Install(patch, s);
                        return Result(patch, s, EnforcementOutcome.Applied,
                            r.Patch.Sites.Count + " site(s) patched; " + r.ThreadCount + " thread(s) stopped for " + r.FreezeTime.TotalMilliseconds.ToString("0.00", CultureInfo.InvariantCulture) + " ms."
                            + (r.Replaced.Count > 0 ? " Replaced " + string.Join(", ", r.Replaced) + "." : ""), null);
                    }
                    catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.AlreadyInstalled)
                    {
                        // Another enforcer or an admin got there first: the goal is met.
                        return Result(patch, s, EnforcementOutcome.AlreadyPatched, e.Message, null);
                    }
                    catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.ProcessExited || e.Kind == HotpatchErrorKind.ProcessNotFound || e.Kind == HotpatchErrorKind.ModuleNotLoaded)
                    {
                        return null;
                    }
                    catch (HotpatchException e)
                    {
                        return Result(patch, s, EnforcementOutcome.Failed, e.Message, e.Kind);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        return Result(patch, s, EnforcementOutcome.Failed, e.GetType().Name + ": " + e.Message, HotpatchErrorKind.Internal);
                    }
                default:
                    return Result(patch, s, EnforcementOutcome.Failed, s.State + ": " + s.Reason, s.ErrorKind);
            }
        }

        /// <summary>Applied and then AlreadyPatched is one state, not news.</summary>
        private static bool Patched(EnforcementOutcome o) => o == EnforcementOutcome.Applied || o == EnforcementOutcome.AlreadyPatched;

        /// <summary>Fingerprints of one process (same start time) before and after a module change; never on a platform without start times.</summary>
        private static bool SameProcess(string a, string b)
        {
            int i = a.IndexOf('|'), j = b.IndexOf('|');
            return i > 0 && i == j && string.CompareOrdinal(a, 0, b, 0, i) == 0;
        }

        private static bool Holds(EnforcementResult r) =>
            r.Outcome == EnforcementOutcome.Applied || r.Outcome == EnforcementOutcome.AlreadyPatched || r.Outcome == EnforcementOutcome.Superseded;

        /// <summary>The patches of the set that replace this one, directly or through a chain (C supersedes B supersedes A).</summary>
        private static List<Micropatch> Successors(Micropatch patch, IReadOnlyList<Micropatch> set) =>
            set.Where(other => !ReferenceEquals(other, patch) && Replaces(other, patch.Id, set, new HashSet<string>(StringComparer.OrdinalIgnoreCase))).ToList();

        private static bool Replaces(Micropatch successor, string id, IReadOnlyList<Micropatch> set, HashSet<string> visited)
        {
            if (!visited.Add(successor.Id)) return false; // a cycle in the files' supersedes lists
            foreach (var old in successor.Supersedes)
            {
                if (string.Equals(old, id, StringComparison.OrdinalIgnoreCase)) return true;
                var next = set.FirstOrDefault(x => string.Equals(x.Id, old, StringComparison.OrdinalIgnoreCase));
                if (next != null && Replaces(next, id, set, visited)) return true;
            }
            return false;
        }

        private static IEnumerable<Micropatch> SuccessorsFirst(IReadOnlyList<Micropatch> set) =>
            set.Select((p, i) => (Patch: p, Index: i, Replaced: set.Count(o => !ReferenceEquals(o, p) && Replaces(p, o.Id, set, new HashSet<string>(StringComparer.OrdinalIgnoreCase)))))
                .OrderByDescending(x => x.Replaced).ThenBy(x => x.Index).Select(x => x.Patch);

        // A failure that may pass by itself is tried again on the next pass even when the process did not change.
        private static bool IsSettled(EnforcementResult r) =>
            r.Outcome != EnforcementOutcome.Failed ||
            !(r.ErrorKind == HotpatchErrorKind.Busy || r.ErrorKind == HotpatchErrorKind.ThreadInSpan || r.ErrorKind == HotpatchErrorKind.Internal ||
              r.ErrorKind == HotpatchErrorKind.WriteFailed || r.ErrorKind == HotpatchErrorKind.NoCaveSpace);

        private static bool ModuleMatches(string moduleName, Micropatch patch) =>
            string.Equals(moduleName, patch.Target.Module, patch.Target.Os == TargetOs.Windows ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);

        private static EnforcementResult Result(Micropatch patch, TargetStatus s, EnforcementOutcome outcome, string reason, HotpatchErrorKind? kind) =>
            Result(patch, s.ProcessId, s.ProcessName, s.Module, outcome, reason, kind);

        private static EnforcementResult Result(Micropatch patch, int pid, string name, string module, EnforcementOutcome outcome, string reason, HotpatchErrorKind? kind) =>
            new EnforcementResult(patch.Id, pid, name, module, outcome, reason, kind);

        /// <summary>
        /// The module list of a process is read again only when its change stamp (start time and virtual size) changed:
        /// loading or unloading a library maps or unmaps memory, so it changes the size, and /proc/PID/stat is a
        /// few hundred bytes where the maps of a large process are hundreds of kilobytes. A load that left the
        /// size exactly as it was (another mapping freed in the same instant) is found by the next full pass.
        /// </summary>
        private View? LookCached(int pid, IReadOnlyList<Micropatch> patches, string patchSet, bool full)
        {
            if (!(_engine.Platform is IMappedFileReader reader)) return Look(pid, patches);
            // Read before the maps: a library loaded in between changes the size again, and the next pass looks.
            string? quick = reader.ChangeStamp(pid);
            if (quick == null) return null;
            if (!full && _views.TryGetValue(pid, out var cached) && cached.Quick == quick && cached.PatchSet == patchSet) return cached.View;
            var view = LookMapped(reader, pid, patches);
            if (view != null) _views[pid] = (quick, patchSet, view);
            return view;
        }

        private sealed class View
        {
            public List<Micropatch> Relevant = new List<Micropatch>();
            public string Fingerprint = "";
        }

        /// <summary>
        /// Which patches concern a process (their module is mapped) and its fingerprint; null when it exited.
        /// Where the platform reads mapped files cheaply (<see cref="IMappedFileReader"/>) one read per process: opening the
        /// process and parsing its module list costs several times more, in every pass, for every process.
        /// </summary>
        private View? Look(int pid, IReadOnlyList<Micropatch> patches)
        {
            if (_engine.Platform is IMappedFileReader reader) return LookMapped(reader, pid, patches);
            IReadOnlyList<LoadedModule> modules;
            using (var target = _engine.Platform.Open(pid)) modules = target.Modules.GetModules();
            var view = new View { Relevant = patches.Where(patch => modules.Any(m => ModuleMatches(m.Name, patch))).ToList() };
            if (view.Relevant.Count > 0) view.Fingerprint = Fingerprint(pid, modules.Select(m => m.Key + "=" + m.Base.ToString("x")));
            return view;
        }

        private View? LookMapped(IMappedFileReader reader, int pid, IReadOnlyList<Micropatch> patches)
        {
            var files = reader.ReadMappedFiles(pid, patches.Select(patch => patch.Target.Module).Distinct().ToList());
            if (files == null) return null;
            var view = new View();
            if (files.Count == 0) return view;

            var names = new HashSet<string>(StringComparer.Ordinal);
            var mappings = new List<string>();
            foreach (var file in files)
            {
                names.Add(Path.GetFileName(file.Path));
                mappings.Add(file.Range + " " + file.Path);
            }
            view.Relevant = patches.Where(patch => names.Any(n => ModuleMatches(n, patch))).ToList();
            if (view.Relevant.Count > 0)
            {
                view.Fingerprint = Fingerprint(pid, mappings);
                // Where these modules live on this machine: the watch marks those files for opens.
                foreach (var m in mappings)
                {
                    var path = m.Substring(m.IndexOf(' ') + 1);
                    if (_seenModulePaths.Count < 1024 && view.Relevant.Any(patch => ModuleMatches(Path.GetFileName(path), patch))) _seenModulePaths.Add(path);
                }
            }
            return view;
        }

        /// <summary>
        /// What must change for a settled target to be looked at again: a new process under a reused id (start
        /// time, Linux) or a module loaded or unloaded (the mapped files, by device:inode on Linux and by
        /// path, time stamp and size on Windows).
        /// </summary>
        private string Fingerprint(int pid, IEnumerable<string> mappings)
        {
            var sb = new StringBuilder();
            sb.Append((_engine.Platform as IMappedFileReader)?.StartTime(pid) ?? "").Append('|');
            foreach (var m in mappings.OrderBy(k => k, StringComparer.Ordinal)) sb.Append(m).Append(';');
            return sb.ToString();
        }
    }
}
