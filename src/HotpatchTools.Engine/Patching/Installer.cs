using System.Diagnostics;
using System.Threading;
using HotpatchTools.Engine.Audit;
using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Platform;

namespace HotpatchTools.Engine.Patching
{
    /// <summary>Where a patch stands in a process (inspection, which plans it) and its install.</summary>
    internal sealed class Installer(IProcessPlatform platform, EngineOptions options, Action<AuditRecord> audit)
    {
        private readonly IProcessPlatform _platform = platform;
        private readonly EngineOptions _options = options;
        private readonly Action<AuditRecord> _audit = audit;

        private void Log(string message)
        {
            if (_options.Log != null) WorkerOutput.Emit(() => _options.Log?.Invoke(message));
        }

        /// <param name="denied">In a sweep, collects "pid (name)" of each process that could not be read instead of a log line.</param>
        /// <param name="keepOpen">Keep the process open in the result when it is Vulnerable, for the install that follows.</param>
        public PreparedInstall? Prepare(Micropatch patch, int pid, bool includeNotLoaded, ICollection<string>? denied, bool keepOpen)
        {
            ITargetProcess opened;
            try { opened = _platform.Open(pid); }
            catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.AccessDenied) { return Denied(patch, pid, "", e, includeNotLoaded, denied); }
            bool kept = false;
            try
            {
                var prepared = Examine(patch, new LayoutSnapshot(opened), includeNotLoaded, denied, out bool settled);
                if (!settled)
                {
                    // Reading takes no lock, so another session may be between writing a cave and its sites: a patch of
                    // ours that is half there, or bytes that are no longer `expect` because another session is writing
                    // this very patch. Once its writer is done, look again, under the lock and at the process as it is
                    // now, before calling the patch inconsistent or the process another build.
                    try
                    {
                        using (Machine.TargetLock.Acquire(pid, _options.LockWait))
                            prepared = Examine(patch, new LayoutSnapshot(opened), includeNotLoaded, denied, out _);
                    }
                    catch (HotpatchException e) when (e.Kind != HotpatchErrorKind.ProcessExited)
                    {
                        Log("process " + pid + ": not looked at again under its writer's lock: " + e.Message);
                    }
                }
                if (keepOpen && prepared?.Plan != null)
                {
                    prepared.Target = opened;
                    kept = true;
                }
                return prepared;
            }
            finally
            {
                if (!kept) opened.Dispose();
            }
        }

        // In a machine-wide sweep a process we cannot read may or may not have the module: say so in
        // the log, not as a result, or every protected process would look like a failed target.
        private PreparedInstall? Denied(Micropatch patch, int pid, string name, HotpatchException e, bool includeNotLoaded, ICollection<string>? denied)
        {
            if (includeNotLoaded)
                return new PreparedInstall(Status(patch, pid, name, TargetState.AccessDenied, e.Message, e.Kind));
            // This process itself is the one documented blind spot (ptrace cannot attach to itself), not a gap.
            if (denied != null) { if (pid != HotpatchEngine.Self) denied.Add(pid + (name.Length > 0 ? " (" + name + ")" : "")); }
            else Log("skipped process " + pid + ": " + e.Message);
            return null;
        }

        /// <summary>What is known of a target before its module is found: the patch and the process.</summary>
        private static TargetStatus Status(Micropatch patch, int pid, string name, TargetState state, string reason, HotpatchErrorKind? kind) =>
            new TargetStatus(pid, name, patch.Target.Module, ModulePath: "", ModuleBase: 0, patch.Id, patch.Title, patch.SourceName, state, reason, kind);

        /// <param name="settled">False when what was seen may be another session's write in progress: look again under its lock.</param>
        private PreparedInstall? Examine(Micropatch patch, LayoutSnapshot target, bool includeNotLoaded, ICollection<string>? denied, out bool settled)
        {
            settled = true;
            int pid = target.Id;
            LoadedModule? module;
            try { module = PatchPlanner.FindModule(target, patch.Target); }
            catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.AccessDenied) { return Denied(patch, pid, target.Name, e, includeNotLoaded, denied); }
            if (module == null)
            {
                if (!includeNotLoaded) return null;
                return new PreparedInstall(Status(patch, pid, target.Name, TargetState.NotLoaded,
                    "Module " + patch.Target.Module + " is not loaded in process " + pid + " (" + target.Name + ").", HotpatchErrorKind.ModuleNotLoaded));
            }
            // State and reason are each outcome's below.
            var status = Status(patch, pid, target.Name, TargetState.Vulnerable, "", null) with { Module = module.Name, ModulePath = module.Path, ModuleBase = module.Base };

            var caves = CaveReader.FindCaves(target);
            var mine = caves.Where(c => CaveReader.SameId(c.Header.PatchId, patch.Id) && c.Header.State == CaveState.Installed).ToList();
            var described = mine.Count > 0 ? CaveReader.Describe(target, mine[0]) : null;
            if (described != null)
            {
                var p = described;
                settled = p.State == PatchState.Installed;
                return new PreparedInstall(status with
                {
                    State = p.State == PatchState.Installed ? TargetState.Patched : TargetState.Inconsistent,
                    ErrorKind = p.State == PatchState.Installed ? HotpatchErrorKind.AlreadyInstalled : HotpatchErrorKind.SiteModified,
                    Reason = p.State == PatchState.Installed
                        ? "Installed " + p.InstalledUtc.ToString("u") + ", cave at 0x" + p.CaveAddress.ToString("x") + (p.FileSha256 == patch.FileSha256 ? "." : "; from a different version of the file (SHA-256 " + p.FileSha256 + ").")
                        : "A cave of this patch is present but not every site holds its jump.",
                });
            }
            var successor = CaveReader.Successor(caves, patch.Id);
            if (successor != null)
            {
                return new PreparedInstall(status with
                {
                    State = TargetState.Superseded,
                    ErrorKind = HotpatchErrorKind.AlreadyInstalled,
                    Reason = "Superseded by " + successor.Header.PatchId + ", installed " + CaveReader.Describe(target, successor).InstalledUtc.ToString("u") + ".",
                });
            }
            var replaced = CaveReader.Replaced(caves, patch);
            try
            {
                ITargetProcess view = replaced.Count == 0 ? target : new SupersededView(target, replaced.SelectMany(c => c.Header.Sites));
                var plan = PatchPlanner.Plan(patch, view, _platform.Os);
                var prepared = new PreparedInstall(status with
                {
                    // Of several mappings of the name, the one whose identity matched.
                    Module = plan.Module.Name, ModulePath = plan.Module.Path, ModuleBase = plan.Module.Base,
                    State = TargetState.Vulnerable,
                    Reason = "Every check passed at " + string.Join(", ", plan.Sites.Select(s => "0x" + s.Address.ToString("x"))) + "."
                        + (replaced.Count > 0 ? " Installing replaces " + string.Join(", ", replaced.Select(c => c.Header.PatchId)) + "." : ""),
                })
                {
                    Patch = patch, Plan = plan, Replaced = replaced,
                };
                prepared.Status.Prepared = prepared;
                return prepared;
            }
            catch (HotpatchException e) when (e.Kind != HotpatchErrorKind.ProcessExited && e.Kind != HotpatchErrorKind.Internal)
            {
                // A site that is not `expect` may be one another session is patching (its cave not yet marked installed).
                settled = e.Kind != HotpatchErrorKind.ExpectMismatch;
                return new PreparedInstall(status with
                {
                    State = e.Kind switch
                    {
                        HotpatchErrorKind.IdentityMismatch or HotpatchErrorKind.ExpectMismatch or HotpatchErrorKind.ModuleNotLoaded => TargetState.Mismatch,
                        HotpatchErrorKind.AccessDenied => TargetState.AccessDenied,
                        _ => TargetState.Unsupported,
                    },
                    Reason = e.Message + (e.Kind == HotpatchErrorKind.ExpectMismatch ? OwnerHint(target) : ""),
                    ErrorKind = e.Kind,
                });
            }
        }

        private static string OwnerHint(ITargetProcess target)
        {
            var others = CaveReader.FindCaves(target).Where(c => c.Header.State == CaveState.Installed).Select(c => c.Header.PatchId).ToList();
            return others.Count == 0 ? "" : " (installed in this process: " + string.Join(", ", others) + ")";
        }

        /// <param name="prepared">What an inspection planned for this process, if one did: used when it still holds.</param>
        public InstallResult Install(Micropatch patch, int pid, PreparedInstall? prepared, AuditRecord record)
        {
            if (prepared != null && (!ReferenceEquals(prepared.Patch, patch) || prepared.Status.ProcessId != pid)) prepared = null;
            using var opened = prepared?.Target == null ? _platform.Open(pid) : null;
            var target = opened ?? prepared!.Target!;
            using var writer = Machine.TargetLock.Acquire(pid, _options.LockWait);
            record.ProcessName = target.Name;
            // One read of the memory map under the lock: for the caves, where a new one may go, and the module.
            var layout = new LayoutSnapshot(target);
            var regions = layout.GetRegions();
            var caves = CaveReader.FindCaves(target, regions);
            var existing = CaveReader.Installed(caves, patch.Id);
            if (existing != null)
                throw new HotpatchException(HotpatchErrorKind.AlreadyInstalled,
                    "Patch " + patch.Id + " is already installed in process " + pid + " (" + target.Name + "), cave at 0x" + existing.Address.ToString("x") + ".") { ProcessId = pid };
            var successor = CaveReader.Successor(caves, patch.Id);
            if (successor != null)
                throw new HotpatchException(HotpatchErrorKind.AlreadyInstalled,
                    "Patch " + patch.Id + " is superseded by " + successor.Header.PatchId + ", installed in process " + pid + " (" + target.Name + ").") { ProcessId = pid };

            // The patches this one replaces: it is planned against the code as it was before them.
            var replaced = CaveReader.Replaced(caves, patch);
            ITargetProcess view = replaced.Count == 0 ? layout : new SupersededView(layout, replaced.SelectMany(c => c.Header.Sites));
            var plan = StillValid(prepared, layout, replaced);
            if (plan != null) Log("the plan of the inspection still holds: module " + plan.Module.Name + " at 0x" + plan.Module.Base.ToString("x") + ", the same patches to replace");
            else plan = PatchPlanner.Plan(patch, view, _platform.Os);
            foreach (var s in plan.Sites)
                Log(s.Patchlet.Name + ": site 0x" + s.Address.ToString("x") + ", " + s.SpanLength + " bytes (" + Hex.Spaced(s.Original) + ")");
            if (replaced.Count > 0) Log("replaces " + string.Join(", ", replaced.Select(c => c.Header.PatchId)) + " under the same freeze");

            int size = CaveBuilder.EstimateSize(plan);
            if (size > CaveHeader.MaxCaveSize)
                throw new HotpatchException(HotpatchErrorKind.NoCaveSpace, "Patch " + patch.Id + " needs a " + size + "-byte cave; at most " + CaveHeader.MaxCaveSize + " bytes are read back as a cave.") { ProcessId = pid };
            // A process with one thread is stopped once: its cave is mapped within the freeze that writes the sites.
            var placement = new CavePlacement(target, regions, plan, size);
            if (!target.Threads.AllocateWithinFreeze) Allocate(target, placement, within: false);
            InstallResult result;
            var toFree = new List<FoundCave>();
            try
            {
                result = Commit(target, view, plan, placement, replaced, toFree);
            }
            catch
            {
                if (placement.Cave is BuiltCave cave)
                {
                    try { target.Memory.Free(cave.Address, cave.Size); }
                    catch (HotpatchException) { /* the process is gone or the original error says more */ }
                }
                throw;
            }
            // As in an uninstall: once no site jumps into a replaced cave and no thread is in it or may return into it, nothing reaches it.
            foreach (var c in toFree) Uninstaller.TryFree(target, c, "replaced cave", Log);
            foreach (var c in replaced)
                _audit(new AuditRecord
                {
                    Action = AuditAction.Uninstall, Result = AuditResult.Removed, PatchId = c.Header.PatchId, ProcessId = pid, ProcessName = target.Name,
                    Module = c.Header.Module, FileSha256 = Hex.Lower(c.Header.FileSha256), Error = "Superseded by " + patch.Id + ".",
                });
            return result;
        }

        /// <summary>
        /// The inspection's plan, when what it was made from still holds under the lock: the same module file mapped at
        /// the same place (its identity was checked against that file) and the same patches to replace. The bytes it
        /// read are compared again under the freeze, as every install does.
        /// </summary>
        private static PatchPlan? StillValid(PreparedInstall? prepared, ITargetProcess target, List<FoundCave> replaced)
        {
            var plan = prepared?.Plan;
            if (plan == null || prepared!.Replaced.Count != replaced.Count) return null;
            for (int i = 0; i < replaced.Count; i++)
                if (prepared.Replaced[i].Address != replaced[i].Address || !prepared.Replaced[i].HeaderBytes.SequenceEqual(replaced[i].HeaderBytes)) return null;
            var m = plan.Module;
            return target.Modules.GetModules().Any(n => n.Key == m.Key && n.Base == m.Base && n.End == m.End && n.Path == m.Path) ? plan : null;
        }

        /// <summary>Where the cave goes: the holes to try, and the cave built for the first before anything is stopped.</summary>
        private sealed class CavePlacement
        {
            public CavePlacement(ITargetProcess target, IReadOnlyList<MemoryRegion> regions, PatchPlan plan, int size)
            {
                Plan = plan;
                Size = size;
                Addresses = CaveBuilder.CandidateAddresses(regions, plan.Module.Base, plan.Module.End, size, plan.Bitness, target.Memory.AllocationGranularity).Take(16).ToList();
                // Encoded before allocating: nothing is computed while the target is stopped (unless that hole was taken).
                First = Addresses.Count > 0 ? CaveBuilder.Build(plan, Addresses[0], size, Now) : null;
            }

            public readonly PatchPlan Plan;
            public readonly int Size;
            public readonly List<ulong> Addresses;
            public readonly BuiltCave? First;
            public readonly DateTime Now = DateTime.UtcNow;
            /// <summary>Set once mapped in the target.</summary>
            public BuiltCave? Cave;
        }

        /// <summary>Maps the cave and marks it as ours at once (nothing reaches it yet, so nothing need stop for that write).</summary>
        private void Allocate(ITargetProcess target, CavePlacement placement, bool within)
        {
            var plan = placement.Plan;
            foreach (var address in placement.Addresses)
            {
                var built = address == placement.Addresses[0] && placement.First != null ? placement.First : CaveBuilder.Build(plan, address, placement.Size, placement.Now);
                if (!target.Memory.TryAllocateAt(address, placement.Size))
                {
                    Log("cave address 0x" + address.ToString("x") + " was taken meanwhile; trying the next hole");
                    continue;
                }
                placement.Cave = built;
                Log("cave: " + placement.Size + " bytes at 0x" + address.ToString("x") + (within ? ", mapped within the freeze (one thread: one stop)" : ""));
                // An installer killed before the commit leaves a cave that later sessions list as Orphaned and Uninstall
                // frees, not an anonymous page.
                var pending = (byte[])built.Image.Clone();
                CaveHeader.WithState(built.Header.Serialize(), CaveState.Pending).CopyTo(pending, 0);
                target.Memory.Write(built.Address, pending);
                FailPoint.Hit("install.after-allocate");
                return;
            }
            throw new HotpatchException(HotpatchErrorKind.NoCaveSpace,
                "No free memory within 2 GB of module " + plan.Module.Name + " in process " + target.Id + " for a " + placement.Size + "-byte cave.") { ProcessId = target.Id };
        }

        private InstallResult Commit(ITargetProcess target, ITargetProcess view, PatchPlan plan, CavePlacement placement, List<FoundCave> replaced, List<FoundCave> toFree)
        {
            var clock = Stopwatch.StartNew();
            for (int attempt = 1; ; attempt++)
            {
                ThreadSnapshot? blocker = null;
                SitePlan? blocked = null;
                var outcome = SiteWriter.Write(target, _options.StopTimeout, frozen =>
                {
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
                        // The span the plan read (and a rollback would restore) may reach past `expect`.
                        var span = new byte[s.Original.Length];
                        view.Memory.Read(s.Address, span);
                        if (!span.SequenceEqual(s.Original))
                            throw new HotpatchException(HotpatchErrorKind.ExpectMismatch,
                                s.Patchlet.Name + ": the bytes at 0x" + s.Address.ToString("x") + " changed to " + Hex.Spaced(span) + " while installing; nothing was written.") { ProcessId = target.Id, Patchlet = s.Patchlet.Name };
                    }
                    foreach (var t in frozen.Threads)
                        foreach (var s in plan.Sites)
                            if (s.Contains(t.ResumeIp) || s.Contains(t.Ip)) { blocker = t; blocked = s; }
                    if (blocker != null) return null;
                    if (placement.Cave == null) Allocate(target, placement, within: true);
                    var cave = placement.Cave!;
                    // Old patches out first, so that a site both patches use holds the original bytes before the new jump.
                    var writes = replaced.SelectMany(c => c.Header.Sites).Select(site => new SiteWrite(site.Address, site.Original, site.Written)).ToList();
                    writes.Add(new SiteWrite(cave.Address, cave.Image, null, "install.after-cave"));
                    for (int i = 0; i < plan.Sites.Count; i++)
                        writes.Add(new SiteWrite(plan.Sites[i].Address, cave.Header.Sites[i].Written, plan.Sites[i].Original, "install.after-site-" + (i + 1)));
                    return writes;
                }, frozen =>
                {
                    foreach (var c in replaced)
                    {
                        if (CaveReader.InUse(target, frozen, c) == null) toFree.Add(c);
                        else target.Memory.Write(c.Address, CaveHeader.WithState(c.HeaderBytes, CaveState.Retired));
                    }
                });
                if (outcome.Written && target.HasExited)
                    throw new HotpatchException(HotpatchErrorKind.ProcessExited,
                        "Process " + target.Id + " was killed while patch " + plan.Patch.Id + " was being installed; it will not run the patch.") { ProcessId = target.Id };
                if (outcome.Written)
                {
                    Log("installed " + plan.Patch.Id + " in process " + target.Id + ": " + outcome.Threads + " threads held for " + outcome.Held.TotalMilliseconds.ToString("0.000") + " ms (stop, write, release), attempt " + attempt);
                    var cave = placement.Cave!;
                    var found = new FoundCave { Address = cave.Address, Header = cave.Header, HeaderBytes = cave.Header.Serialize() };
                    return new InstallResult(CaveReader.Describe(target, found), outcome.Held, outcome.Threads, replaced.Select(c => c.Header.PatchId).ToList());
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
    }
}
