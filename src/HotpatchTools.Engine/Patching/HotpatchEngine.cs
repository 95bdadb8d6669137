using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
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

        public HotpatchEngine(IProcessPlatform? platform = null, EngineOptions? options = null)
        {
            _platform = platform ?? CurrentPlatform();
            _options = options ?? new EngineOptions();
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

        private void Log(string message) => _options.Log?.Invoke(message);

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
            for (int i = 0; i < pids.Count; i++)
            {
                progress?.Invoke(i, pids.Count);
                TargetStatus? status;
                // A process that exits while the machine is swept is simply no longer a target.
                try { status = Inspect(patch, pids[i].Id, includeNotLoaded: false, denied: denied); }
                catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.ProcessExited || e.Kind == HotpatchErrorKind.ProcessNotFound) { continue; }
                // One hostile process must not end (or hide the rest of) a sweep.
                catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.SuspiciousProcess) { Warn(e.Message); continue; }
                if (status != null) yield return status;
            }
            WarnUnreadable(denied);
        }

        internal static readonly int Self = Process.GetCurrentProcess().Id;

        private void Warn(string message)
        {
            if (_options.Warn != null) _options.Warn(message); else Log(message);
        }

        /// <summary>One warning with the count of processes a sweep could not read; their names go to the log (-Verbose).</summary>
        public void WarnUnreadable(IReadOnlyCollection<string> processes)
        {
            if (processes.Count == 0) return;
            Log("could not read: " + string.Join(", ", processes));
            Warn(processes.Count + " process(es) could not be read (not elevated, or protected); this sweep does not cover them.");
        }

        /// <param name="denied">In a sweep, collects "pid (name)" of each process that could not be read instead of a log line.</param>
        public TargetStatus? Inspect(Micropatch patch, int pid, bool includeNotLoaded = true, ICollection<string>? denied = null)
        {
            // In a machine-wide sweep a process we cannot read may or may not have the module: say so in
            // the log, not as a result, or every protected process would look like a failed target.
            TargetStatus? Denied(HotpatchException e, string name)
            {
                if (includeNotLoaded)
                    return new TargetStatus { ProcessId = pid, ProcessName = name, PatchId = patch.Id, PatchTitle = patch.Title, PatchPath = patch.SourceName, Module = patch.Target.Module, State = TargetState.AccessDenied, Reason = e.Message, ErrorKind = e.Kind };
                // This process itself is the one documented blind spot (ptrace cannot attach to itself), not a gap.
                if (denied != null) { if (pid != Self) denied.Add(pid + (name.Length > 0 ? " (" + name + ")" : "")); }
                else Log("skipped process " + pid + ": " + e.Message);
                return null;
            }

            ITargetProcess target;
            try { target = _platform.Open(pid); }
            catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.AccessDenied) { return Denied(e, ""); }
            using (target)
            {
                var status = new TargetStatus { ProcessId = pid, ProcessName = target.Name, PatchId = patch.Id, PatchTitle = patch.Title, PatchPath = patch.SourceName, Module = patch.Target.Module };
                LoadedModule? module;
                try { module = PatchPlanner.FindModule(target, patch.Target); }
                catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.AccessDenied) { return Denied(e, target.Name); }
                if (module == null)
                {
                    if (!includeNotLoaded) return null;
                    status.State = TargetState.NotLoaded;
                    status.Reason = "Module " + patch.Target.Module + " is not loaded in process " + pid + " (" + target.Name + ").";
                    status.ErrorKind = HotpatchErrorKind.ModuleNotLoaded;
                    return status;
                }
                status.Module = module.Name;
                status.ModulePath = module.Path;
                status.ModuleBase = module.Base;

                var caves = FindCaves(target);
                var mine = caves.Where(c => SameId(c.Header.PatchId, patch.Id) && c.Header.State == CaveState.Installed).ToList();
                if (mine.Count > 0 && Describe(target, mine[0]).State != PatchState.Installed)
                {
                    // Reading takes no lock, so another session may be between writing a cave and its sites: once its
                    // writer is done, look again before calling the patch inconsistent.
                    try
                    {
                        using (Machine.TargetLock.Acquire(pid, _options.LockWait)) caves = FindCaves(target);
                        mine = caves.Where(c => SameId(c.Header.PatchId, patch.Id) && c.Header.State == CaveState.Installed).ToList();
                    }
                    catch (HotpatchException e) { Log("process " + pid + ": not looked at again under its writer's lock: " + e.Message); }
                }
                if (mine.Count > 0)
                {
                    var p = Describe(target, mine[0]);
                    status.State = p.State == PatchState.Installed ? TargetState.Patched : TargetState.Inconsistent;
                    status.ErrorKind = p.State == PatchState.Installed ? HotpatchErrorKind.AlreadyInstalled : HotpatchErrorKind.SiteModified;
                    status.Reason = p.State == PatchState.Installed
                        ? "Installed " + p.InstalledUtc.ToString("u") + ", cave at 0x" + p.CaveAddress.ToString("x") + (p.FileSha256 == patch.FileSha256 ? "." : "; from a different version of the file (SHA-256 " + p.FileSha256 + ").")
                        : "A cave of this patch is present but not every site holds its jump.";
                    return status;
                }
                var successor = Successor(caves, patch.Id);
                if (successor != null)
                {
                    status.State = TargetState.Superseded;
                    status.ErrorKind = HotpatchErrorKind.AlreadyInstalled;
                    status.Reason = "Superseded by " + successor.Header.PatchId + ", installed " + Describe(target, successor).InstalledUtc.ToString("u") + ".";
                    return status;
                }
                var replaced = Replaced(caves, patch);
                try
                {
                    var view = replaced.Count == 0 ? target : new SupersededView(target, replaced.SelectMany(c => c.Header.Sites));
                    var plan = PatchPlanner.Plan(patch, view, _platform.Os);
                    // Of several mappings of the name, the one whose identity matched.
                    status.Module = plan.Module.Name;
                    status.ModulePath = plan.Module.Path;
                    status.ModuleBase = plan.Module.Base;
                    status.State = TargetState.Vulnerable;
                    status.Reason = "Every check passed at " + string.Join(", ", plan.Sites.Select(s => "0x" + s.Address.ToString("x"))) + "."
                        + (replaced.Count > 0 ? " Installing replaces " + string.Join(", ", replaced.Select(c => c.Header.PatchId)) + "." : "");
                }
                catch (HotpatchException e) when (e.Kind != HotpatchErrorKind.ProcessExited && e.Kind != HotpatchErrorKind.Internal)
                {
                    status.State = e.Kind switch
                    {
                        HotpatchErrorKind.IdentityMismatch or HotpatchErrorKind.ExpectMismatch or HotpatchErrorKind.ModuleNotLoaded => TargetState.Mismatch,
                        HotpatchErrorKind.AccessDenied => TargetState.AccessDenied,
                        _ => TargetState.Unsupported,
                    };
                    status.Reason = e.Message + (e.Kind == HotpatchErrorKind.ExpectMismatch ? OwnerHint(target) : "");
                    status.ErrorKind = e.Kind;
                }
                return status;
            }
        }

        private string OwnerHint(ITargetProcess target)
        {
            var others = FindCaves(target).Where(c => c.Header.State == CaveState.Installed).Select(c => c.Header.PatchId).ToList();
            return others.Count == 0 ? "" : " (installed in this process: " + string.Join(", ", others) + ")";
        }

        // ---- installed state, read from the process ----

        internal sealed class FoundCave
        {
            public CaveHeader Header = null!;
            public byte[] HeaderBytes = null!;
            public ulong Address;
        }

        /// <summary>
        /// What one process may cost a reader of its caves. No install makes more than a few caves per process, and
        /// real headers are a few hundred bytes; a process over any of these is forging headers (to make a sweep run
        /// as root allocate without end) and is reported instead of read further.
        /// </summary>
        internal const int MaxCavesPerProcess = 256;
        internal const int MaxRejectedHeadersPerProcess = 16;
        internal const long MaxHeaderBytesPerProcess = 4L << 20;

        private sealed class CaveReader
        {
            private readonly ITargetProcess _target;
            private int _rejected;
            private long _bytes;
            private readonly byte[] _head = new byte[CaveHeader.FixedLength];
            private readonly byte[] _tail = new byte[CaveHeader.TrailerLength];

            public CaveReader(ITargetProcess target) { _target = target; }

            /// <summary>The cave at `address` that fits before `regionEnd`, or null; throws SuspiciousProcess when over budget.</summary>
            public FoundCave? At(ulong address, ulong regionEnd)
            {
                if (_target.Memory.TryRead(address, _head) != _head.Length || !CaveHeader.HasMagic(_head)) return null;
                if (CaveHeader.PeekFixed(_head, address, regionEnd) is not (uint len, uint size)) return Reject(address);
                if (_target.Memory.TryRead(address + size - CaveHeader.TrailerLength, _tail) != _tail.Length || CaveHeader.PeekTrailer(_tail) != size) return Reject(address);
                _bytes += len;
                if (_bytes > MaxHeaderBytesPerProcess) throw Suspicious("its cave headers add up to more than " + (MaxHeaderBytesPerProcess >> 20) + " MiB");
                var bytes = new byte[len];
                if (_target.Memory.TryRead(address, bytes) != len) return null;
                var h = CaveHeader.TryParse(bytes);
                return h == null ? Reject(address) : new FoundCave { Header = h, HeaderBytes = bytes, Address = address };
            }

            /// <summary>The cave size a trailer ending at `end` states, or null.</summary>
            public uint? TrailerBefore(ulong end) =>
                _target.Memory.TryRead(end - CaveHeader.TrailerLength, _tail) == _tail.Length ? CaveHeader.PeekTrailer(_tail) : null;

            private FoundCave? Reject(ulong address)
            {
                // One torn read while another session writes a cave is possible; many are not.
                if (++_rejected > MaxRejectedHeadersPerProcess)
                    throw Suspicious("more than " + MaxRejectedHeadersPerProcess + " of its memory regions begin like a cave header that does not hold together (the last at 0x" + address.ToString("x") + ")");
                return null;
            }

            public HotpatchException Suspicious(string why) =>
                new HotpatchException(HotpatchErrorKind.SuspiciousProcess,
                    "Process " + _target.Id + " (" + _target.Name + ") looks like it forges patch caves: " + why + ". Its caves were not read further; nothing was written to it.") { ProcessId = _target.Id };
        }

        internal static List<FoundCave> FindCaves(ITargetProcess target)
        {
            var found = new List<FoundCave>();
            var reader = new CaveReader(target);
            void Add(FoundCave c)
            {
                if (found.Count == MaxCavesPerProcess) throw reader.Suspicious("it holds more than " + MaxCavesPerProcess + " caves");
                found.Add(c);
            }
            foreach (var r in target.Memory.GetRegions())
            {
                if (!r.IsAnonymousPrivate || !r.Executable) continue;
                // Adjacent caves (or a cave after foreign code) may share one merged region: walk it from both ends.
                ulong pos = r.Start, end = r.End;
                FoundCave? c;
                while (pos < end && (c = reader.At(pos, end)) != null)
                {
                    Add(c);
                    pos += c.Header.CaveSize;
                }
                while (end - pos >= 4096 && reader.TrailerBefore(end) is uint size && end - pos >= size && (c = reader.At(end - size, end)) != null)
                {
                    Add(c);
                    end -= size;
                }
            }
            return found;
        }

        /// <summary>
        /// Whether a site holds what this very cave wrote there: the header is the target's word, so its "written" bytes
        /// count only when they are not the original ones and, for an insert site, are the jump into this cave's code
        /// for that site. A header saying Installed over vulnerable bytes does not make a process patched.
        /// </summary>
        internal static bool HoldsOurs(ulong caveAddress, CaveSite s, byte[] current)
        {
            if (!current.SequenceEqual(s.Written) || s.Written.SequenceEqual(s.Original)) return false;
            if (s.Mode == PatchMode.Replace) return true;
            if (s.CodeLength == 0 || s.Written.Length < 5 || s.Written[0] != 0xE9) return false;
            long rel = BitConverter.ToInt32(s.Written, 1);
            return unchecked(s.Address + 5 + (ulong)rel) == caveAddress + s.CodeOffset;
        }

        private static InstalledPatch Describe(ITargetProcess target, FoundCave c)
        {
            var sites = c.Header.Sites.Select(s =>
            {
                var cur = new byte[s.Written.Length];
                target.Memory.TryRead(s.Address, cur);
                return new SiteRecord { Address = s.Address, Mode = s.Mode.ToString(), Original = s.Original, Written = s.Written, Current = cur };
            }).ToList();
            var state = c.Header.State == CaveState.Retired ? PatchState.Retired
                : c.Header.State == CaveState.Pending ? PatchState.Orphaned
                : c.Header.Sites.Select((s, i) => HoldsOurs(c.Address, s, sites[i].Current)).All(x => x) ? PatchState.Installed : PatchState.Inconsistent;
            return new InstalledPatch
            {
                ProcessId = target.Id, ProcessName = target.Name, PatchId = c.Header.PatchId, FileSha256 = Hex.Lower(c.Header.FileSha256),
                Module = c.Header.Module, InstalledUtc = new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddMilliseconds(c.Header.InstalledUnixMs),
                CaveAddress = c.Address, CaveSize = (int)c.Header.CaveSize, State = state, Sites = sites,
            };
        }

        public IReadOnlyList<InstalledPatch> GetInstalled(int pid)
        {
            using var target = _platform.Open(pid);
            return FindCaves(target).Select(c => Describe(target, c)).ToList();
        }

        // ---- install ----

        public InstallResult Install(Micropatch patch, int pid)
        {
            var record = new AuditRecord
            {
                Action = AuditRecord.ActionInstall, PatchId = patch.Id, FileSha256 = patch.FileSha256, Path = patch.SourceName, ProcessId = pid,
                Module = patch.Target.Module, Signer = patch.Signature?.Signer, Thumbprint = patch.Signature?.Thumbprint,
                SignatureStatus = patch.Signature?.Status.ToString() ?? "NotChecked",
            };
            try
            {
                var result = InstallCore(patch, pid, record);
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
            try { _options.Audit(record); }
            catch (Exception e) { Log("audit record not written: " + e.Message); }
        }

        private InstallResult InstallCore(Micropatch patch, int pid, AuditRecord record)
        {
            using var target = _platform.Open(pid);
            using var writer = Machine.TargetLock.Acquire(pid, _options.LockWait);
            record.ProcessName = target.Name;
            var caves = FindCaves(target);
            var existing = caves.FirstOrDefault(c => SameId(c.Header.PatchId, patch.Id) && c.Header.State == CaveState.Installed);
            if (existing != null)
                throw new HotpatchException(HotpatchErrorKind.AlreadyInstalled,
                    "Patch " + patch.Id + " is already installed in process " + pid + " (" + target.Name + "), cave at 0x" + existing.Address.ToString("x") + ".") { ProcessId = pid };
            var successor = Successor(caves, patch.Id);
            if (successor != null)
                throw new HotpatchException(HotpatchErrorKind.AlreadyInstalled,
                    "Patch " + patch.Id + " is superseded by " + successor.Header.PatchId + ", installed in process " + pid + " (" + target.Name + ").") { ProcessId = pid };

            // The patches this one replaces: it is planned against the code as it was before them.
            var replaced = Replaced(caves, patch);
            var view = replaced.Count == 0 ? target : new SupersededView(target, replaced.SelectMany(c => c.Header.Sites));
            var plan = PatchPlanner.Plan(patch, view, _platform.Os);
            foreach (var s in plan.Sites)
                Log(s.Patchlet.Name + ": site 0x" + s.Address.ToString("x") + ", " + s.SpanLength + " bytes (" + Hex.Spaced(s.Original) + ")");
            if (replaced.Count > 0) Log("replaces " + string.Join(", ", replaced.Select(c => c.Header.PatchId)) + " under the same freeze");

            int size = CaveBuilder.EstimateSize(plan);
            if (size > CaveHeader.MaxCaveSize)
                throw new HotpatchException(HotpatchErrorKind.NoCaveSpace, "Patch " + patch.Id + " needs a " + size + "-byte cave; at most " + CaveHeader.MaxCaveSize + " bytes are read back as a cave.") { ProcessId = pid };
            var cave = AllocateCave(target, plan, size);
            Log("cave: " + size + " bytes at 0x" + cave.Address.ToString("x"));
            InstallResult result;
            var toFree = new List<FoundCave>();
            try
            {
                // Marked as ours at once (nothing reaches it yet, so no thread need stop): an installer killed before the
                // commit leaves a cave that later sessions list as Orphaned and Uninstall frees, not an anonymous page.
                var pending = (byte[])cave.Image.Clone();
                CaveHeader.WithState(cave.Header.Serialize(), CaveState.Pending).CopyTo(pending, 0);
                target.Memory.Write(cave.Address, pending);
                FailPoint.Hit("install.after-allocate");
                result = Commit(target, view, plan, cave, replaced, toFree);
            }
            catch
            {
                try { target.Memory.Free(cave.Address, cave.Size, null); }
                catch (HotpatchException) { /* the process is gone or the original error says more */ }
                throw;
            }
            // As in an uninstall: once no site jumps into a replaced cave and no thread is in it or may return into it, nothing reaches it.
            foreach (var c in toFree)
            {
                if (!StillHolds(target, c)) { Log("replaced cave at 0x" + c.Address.ToString("x") + " changed since it was read; not freed"); continue; }
                try { target.Memory.Free(c.Address, (int)c.Header.CaveSize, null); }
                catch (HotpatchException e) { Log("replaced cave at 0x" + c.Address.ToString("x") + " not freed: " + e.Message); }
            }
            foreach (var c in replaced)
                Audit(new AuditRecord
                {
                    Action = AuditRecord.ActionUninstall, Result = AuditResult.Removed, PatchId = c.Header.PatchId, ProcessId = pid, ProcessName = target.Name,
                    Module = c.Header.Module, FileSha256 = Hex.Lower(c.Header.FileSha256), Error = "Superseded by " + patch.Id + ".",
                });
            return result;
        }

        /// <summary>An installed patch that lists this id in its `supersedes`.</summary>
        private static FoundCave? Successor(IEnumerable<FoundCave> caves, string patchId) =>
            caves.FirstOrDefault(c => c.Header.State == CaveState.Installed && c.Header.Supersedes.Any(id => SameId(id, patchId)));

        private static List<FoundCave> Replaced(IEnumerable<FoundCave> caves, Micropatch patch) =>
            patch.Supersedes.Count == 0 ? new List<FoundCave>()
                : caves.Where(c => c.Header.State == CaveState.Installed && patch.Supersedes.Any(id => SameId(id, c.Header.PatchId))).ToList();

        private BuiltCave AllocateCave(ITargetProcess target, PatchPlan plan, int size)
        {
            var now = DateTime.UtcNow;
            var candidates = CaveBuilder.CandidateAddresses(target.Memory.GetRegions(), plan.Module.Base, plan.Module.End, size, plan.Bitness, target.Memory.AllocationGranularity).Take(16);
            foreach (var address in candidates)
            {
                // Encoded before allocating: nothing is computed while the target is stopped.
                var built = CaveBuilder.Build(plan, address, size, now);
                if (target.Memory.TryAllocateAt(address, size, null)) return built;
                Log("cave address 0x" + address.ToString("x") + " was taken meanwhile; trying the next hole");
            }
            throw new HotpatchException(HotpatchErrorKind.NoCaveSpace,
                "No free memory within 2 GB of module " + plan.Module.Name + " in process " + target.Id + " for a " + size + "-byte cave.") { ProcessId = target.Id };
        }

        private InstallResult Commit(ITargetProcess target, ITargetProcess view, PatchPlan plan, BuiltCave cave, List<FoundCave> replaced, List<FoundCave> toFree)
        {
            var clock = Stopwatch.StartNew();
            for (int attempt = 1; ; attempt++)
            {
                ThreadSnapshot? blocker = null;
                SitePlan? blocked = null;
                int threads = 0;
                bool done = false;
                // FreezeTime is the whole hold: from the first thread stopped to the last one released.
                var freeze = Stopwatch.StartNew();
                using (var frozen = target.Threads.Freeze(_options.StopTimeout))
                {
                    threads = frozen.Threads.Count;
                    // A replaced patch whose site something else changed cannot be removed: then nothing is written.
                    foreach (var c in replaced)
                        foreach (var site in c.Header.Sites)
                        {
                            var now = new byte[site.Written.Length];
                            target.Memory.Read(site.Address, now);
                            if (!now.SequenceEqual(site.Written))
                                throw new HotpatchException(HotpatchErrorKind.SiteModified,
                                    "Site 0x" + site.Address.ToString("x") + " of patch " + c.Header.PatchId + ", which " + plan.Patch.Id + " supersedes, no longer holds that patch's bytes (it holds " +
                                    Hex.Spaced(now) + "); nothing was written and " + c.Header.PatchId + " stays installed.") { ProcessId = target.Id };
                        }
                    foreach (var s in plan.Sites)
                    {
                        var now = new byte[s.Patchlet.Expect.Length];
                        view.Memory.Read(s.At, now);
                        if (!now.SequenceEqual(s.Patchlet.Expect))
                            throw new HotpatchException(HotpatchErrorKind.ExpectMismatch,
                                s.Patchlet.Name + ": the bytes at 0x" + s.At.ToString("x") + " changed to " + Hex.Spaced(now) + " while installing; nothing was written.") { ProcessId = target.Id, Patchlet = s.Patchlet.Name };
                    }
                    foreach (var t in frozen.Threads)
                        foreach (var s in plan.Sites)
                            if (s.Contains(t.ResumeIp) || s.Contains(t.Ip)) { blocker = t; blocked = s; }
                    if (blocker == null)
                    {
                        // Old patches out first, so that a site both patches use holds the original bytes before the new jump.
                        var restored = new List<CaveSite>();
                        var written = new List<int>();
                        try
                        {
                            foreach (var site in replaced.SelectMany(c => c.Header.Sites))
                            {
                                restored.Add(site);
                                WriteVerified(target, site.Address, site.Original);
                            }
                            WriteVerified(target, cave.Address, cave.Image);
                            FailPoint.Hit("install.after-cave");
                            for (int i = 0; i < plan.Sites.Count; i++)
                            {
                                written.Add(i);
                                WriteVerified(target, plan.Sites[i].Address, cave.Header.Sites[i].Written);
                                FailPoint.Hit("install.after-site-" + (i + 1));
                            }
                        }
                        catch
                        {
                            for (int k = written.Count - 1; k >= 0; k--)
                            {
                                var s = plan.Sites[written[k]];
                                try { target.Memory.Write(s.Address, s.Original); } catch (HotpatchException) { }
                            }
                            for (int k = restored.Count - 1; k >= 0; k--)
                                try { target.Memory.Write(restored[k].Address, restored[k].Written); } catch (HotpatchException) { }
                            throw;
                        }
                        foreach (var c in replaced)
                        {
                            if (CaveInUse(target, frozen, c) == null) toFree.Add(c);
                            else target.Memory.Write(c.Address, CaveHeader.WithState(c.HeaderBytes, CaveState.Retired));
                        }
                        done = true;
                    }
                }
                freeze.Stop();
                if (done && target.HasExited)
                    throw new HotpatchException(HotpatchErrorKind.ProcessExited,
                        "Process " + target.Id + " was killed while patch " + plan.Patch.Id + " was being installed; it will not run the patch.") { ProcessId = target.Id };
                if (done)
                {
                    Log("installed " + plan.Patch.Id + " in process " + target.Id + ": " + threads + " threads held for " + freeze.Elapsed.TotalMilliseconds.ToString("0.000") + " ms (stop, write, release), attempt " + attempt);
                    var found = new FoundCave { Address = cave.Address, Header = cave.Header, HeaderBytes = cave.Header.Serialize() };
                    return new InstallResult
                    {
                        Patch = Describe(target, found), FreezeTime = freeze.Elapsed, Attempts = attempt, ThreadCount = threads,
                        Replaced = replaced.Select(c => c.Header.PatchId).ToList(),
                    };
                }
                if (blocker == null || blocked == null) throw new InvalidOperationException("no write and no blocking thread");
                if (clock.Elapsed > _options.ThreadWait)
                    throw new HotpatchException(HotpatchErrorKind.ThreadInSpan,
                        blocked.Patchlet.Name + ": thread " + blocker.Id + " stayed at 0x" + blocker.ResumeIp.ToString("x") + ", inside the bytes to overwrite at 0x" + blocked.Address.ToString("x") +
                        ", for " + _options.ThreadWait.TotalSeconds + " s; nothing was written.") { ProcessId = target.Id, Patchlet = blocked.Patchlet.Name };
                Log("thread " + blocker.Id + " is inside the span at 0x" + blocker.ResumeIp.ToString("x") + "; retrying");
                Thread.Sleep(Math.Min(5 * attempt, 50));
            }
        }

        private static void WriteVerified(ITargetProcess target, ulong address, byte[] bytes)
        {
            target.Memory.Write(address, bytes);
            var back = new byte[bytes.Length];
            target.Memory.Read(address, back);
            if (!back.SequenceEqual(bytes))
                throw new HotpatchException(HotpatchErrorKind.WriteFailed, "Bytes written at 0x" + address.ToString("x") + " in process " + target.Id + " did not read back as written.") { ProcessId = target.Id };
        }

        // ---- uninstall ----

        public UninstallResult Uninstall(int pid, string patchId)
        {
            var record = new AuditRecord { Action = AuditRecord.ActionUninstall, PatchId = patchId, ProcessId = pid };
            try
            {
                var result = UninstallCore(pid, patchId, record);
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

        private UninstallResult UninstallCore(int pid, string patchId, AuditRecord record)
        {
            using var target = _platform.Open(pid);
            using var writer = Machine.TargetLock.Acquire(pid, _options.LockWait);
            record.ProcessName = target.Name;
            var all = FindCaves(target);
            var caves = all.Where(c => SameId(c.Header.PatchId, patchId)).ToList();
            // A process being torn down has no mappings left: that, not a missing patch, is the news.
            if (caves.Count == 0 && target.Memory.GetRegions().Count == 0) throw new HotpatchException(HotpatchErrorKind.ProcessExited, "Process " + pid + " has exited.") { ProcessId = pid };
            var orphans = caves.Where(c => c.Header.State == CaveState.Pending).ToList();
            if (orphans.Count > 0 && !caves.Any(c => c.Header.State == CaveState.Installed))
                return FreeOrphans(target, orphans, patchId);
            var cave = caves.FirstOrDefault(c => c.Header.State == CaveState.Installed)
                ?? throw new HotpatchException(HotpatchErrorKind.NotInstalled,
                    "Patch " + patchId + " is not installed in process " + pid + " (" + target.Name + ")" + (caves.Count > 0 ? "; it was removed earlier and only its retired cave remains." : ".")) { ProcessId = pid };
            record.Module = cave.Header.Module;
            record.FileSha256 = Hex.Lower(cave.Header.FileSha256);

            var clock = Stopwatch.StartNew();
            var result = new UninstallResult();
            // Decided while every thread is stopped, done after they run again: once the sites hold their original
            // bytes and no thread is in a cave or may return into it, nothing can reach that cave any more, so
            // unmapping it need not hold the whole process still.
            var toFree = new List<FoundCave>();
            int threads;
            using (var frozen = target.Threads.Freeze(_options.StopTimeout))
            {
                threads = frozen.Threads.Count;
                var toRestore = new List<CaveSite>();
                foreach (var s in cave.Header.Sites)
                {
                    var cur = new byte[s.Written.Length];
                    target.Memory.Read(s.Address, cur);
                    if (cur.SequenceEqual(s.Written)) toRestore.Add(s);
                    else if (!cur.SequenceEqual(s.Original))
                        throw new HotpatchException(HotpatchErrorKind.SiteModified,
                            "Site 0x" + s.Address.ToString("x") + " of patch " + patchId + " in process " + pid + " no longer holds the patch's bytes (it holds " + Hex.Spaced(cur) +
                            "); something else changed it. Nothing was written.") { ProcessId = pid };
                }
                var restored = new List<CaveSite>();
                try
                {
                    foreach (var s in toRestore)
                    {
                        WriteVerified(target, s.Address, s.Original);
                        restored.Add(s);
                        FailPoint.Hit("uninstall.after-site-" + restored.Count);
                    }
                }
                catch
                {
                    foreach (var s in restored) try { target.Memory.Write(s.Address, s.Written); } catch (HotpatchException) { }
                    throw;
                }

                string? busy = CaveInUse(target, frozen, cave);
                if (busy == null)
                {
                    toFree.Add(cave);
                    result.CaveFreed = true;
                    result.Message = "Original bytes restored; cave freed.";
                }
                else
                {
                    target.Memory.Write(cave.Address, CaveHeader.WithState(cave.HeaderBytes, CaveState.Retired));
                    result.Message = "Original bytes restored; the cave at 0x" + cave.Address.ToString("x") + " is kept (retired) because " + busy + ".";
                }
                // Caves retired by earlier uninstalls are freed once no thread is in them or may return into them.
                toFree.AddRange(all.Where(c => c.Header.State == CaveState.Retired && CaveInUse(target, frozen, c) == null));
            }
            result.FreezeTime = clock.Elapsed;
            FailPoint.Hit("uninstall.before-free");
            if (target.HasExited)
                throw new HotpatchException(HotpatchErrorKind.ProcessExited, "Process " + pid + " was killed, or ran another program, while patch " + patchId + " was being removed; nothing more was written to it.") { ProcessId = pid };
            foreach (var c in toFree)
            {
                // Every writer holds the lock, so the cave is still the one decided on; a writer that does not (an
                // older version, another tool) could have freed it and mapped another there: unmap only what is ours.
                if (!StillHolds(target, c)) { Log("cave at 0x" + c.Address.ToString("x") + " changed since it was read; not freed"); continue; }
                target.Memory.Free(c.Address, (int)c.Header.CaveSize, null);
            }
            if (toFree.Count > (result.CaveFreed ? 1 : 0)) Log("freed " + (toFree.Count - (result.CaveFreed ? 1 : 0)) + " retired cave(s) no thread can reach any more");
            Log("uninstalled " + patchId + " from process " + pid + ": " + result.Message + " " + threads + " threads held for " + result.FreezeTime.TotalMilliseconds.ToString("0.000") + " ms (stop, restore, release)");
            var described = Describe(target, cave);
            described.State = PatchState.Removed;
            result.Patch = described;
            return result;
        }

        /// <summary>
        /// Caves an installer marked and then died before the commit. This session holds the process's writer lock, so
        /// no installer is working on them, and no site was ever pointed at them: they are freed without a freeze.
        /// </summary>
        private UninstallResult FreeOrphans(ITargetProcess target, List<FoundCave> orphans, string patchId)
        {
            foreach (var c in orphans)
                if (StillHolds(target, c)) target.Memory.Free(c.Address, (int)c.Header.CaveSize, null);
            Log("freed " + orphans.Count + " orphaned cave(s) of " + patchId + " in process " + target.Id);
            var described = Describe(target, orphans[0]);
            described.State = PatchState.Removed;
            return new UninstallResult { Patch = described, CaveFreed = true, Message = "An orphaned cave (its installer stopped before writing any site) was freed; no site was changed." };
        }

        /// <summary>The cave's header is still there as read (or as this uninstall retired it).</summary>
        private static bool StillHolds(ITargetProcess target, FoundCave c)
        {
            var now = new byte[c.HeaderBytes.Length];
            if (target.Memory.TryRead(c.Address, now) != now.Length) return false;
            return now.SequenceEqual(c.HeaderBytes) || now.SequenceEqual(CaveHeader.WithState(c.HeaderBytes, CaveState.Retired));
        }

        /// <summary>Why the cave cannot be freed now, or null: a thread is executing in it or may return into it.</summary>
        private static string? CaveInUse(ITargetProcess target, IFrozenProcess frozen, FoundCave cave)
        {
            ulong lo = cave.Address, hi = cave.Address + cave.Header.CaveSize;
            foreach (var t in frozen.Threads)
                if ((t.Ip >= lo && t.Ip < hi) || (t.ResumeIp >= lo && t.ResumeIp < hi))
                    return "thread " + t.Id + " is executing in it";
            if ((cave.Header.Flags & CaveHeader.FlagContainsCalls) == 0) return null;
            var regions = target.Memory.GetRegions();
            // A 32-bit stack holds 4-byte return addresses at 4-byte alignment: read in 8-byte slots, each would be
            // paired with its neighbour and missed.
            int slot = target.Bitness / 8;
            foreach (var t in frozen.Threads)
            {
                var stack = regions.FirstOrDefault(r => t.StackPointer >= r.Start && t.StackPointer < r.End);
                if (stack == null) return "thread " + t.Id + "'s stack could not be read";
                // The used part of a stack lies between rsp and the top of its mapping.
                ulong sp = t.StackPointer & ~(ulong)(slot - 1);
                ulong len = Math.Min(stack.End - sp, 8UL << 20);
                var buf = new byte[len];
                int n = target.Memory.TryRead(sp, buf);
                if (n < (int)len) return "thread " + t.Id + "'s stack could not be read";
                for (int i = 0; i + slot <= n; i += slot)
                {
                    ulong v = slot == 8 ? BitConverter.ToUInt64(buf, i) : BitConverter.ToUInt32(buf, i);
                    if (v >= lo && v < hi) return "thread " + t.Id + " may return into it (its stack holds 0x" + v.ToString("x") + ")";
                }
            }
            return null;
        }

        private static bool SameId(string a, string b) => string.Equals(a, b, StringComparison.OrdinalIgnoreCase);
    }
}
