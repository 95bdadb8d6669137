using HotpatchTools.Engine.Audit;
using HotpatchTools.Engine.Platform;

namespace HotpatchTools.Engine.Patching
{
    /// <summary>Removes an installed patch: its sites back to their original bytes, its cave freed once nothing can reach it.</summary>
    internal sealed class Uninstaller(IProcessPlatform platform, EngineOptions options)
    {
        private readonly IProcessPlatform _platform = platform;
        private readonly EngineOptions _options = options;

        private void Log(string message)
        {
            if (_options.Log != null) WorkerOutput.Emit(() => _options.Log?.Invoke(message));
        }

        public UninstallResult Uninstall(int pid, string patchId, AuditRecord record)
        {
            using var target = _platform.Open(pid);
            using var writer = Machine.TargetLock.Acquire(pid, _options.LockWait);
            record.ProcessName = target.Name;
            var regions = target.Memory.GetRegions();
            var all = CaveReader.FindCaves(target, regions);
            var caves = all.Where(c => CaveReader.SameId(c.Header.PatchId, patchId)).ToList();
            // A process being torn down has no mappings left: that, not a missing patch, is the news.
            if (caves.Count == 0 && regions.Count == 0) throw new HotpatchException(HotpatchErrorKind.ProcessExited, "Process " + pid + " has exited.") { ProcessId = pid };
            var orphans = caves.Where(c => c.Header.State == CaveState.Pending).ToList();
            if (orphans.Count > 0 && !caves.Any(c => c.Header.State == CaveState.Installed))
                return FreeOrphans(target, orphans, patchId);
            var cave = caves.FirstOrDefault(c => c.Header.State == CaveState.Installed)
                ?? throw new HotpatchException(HotpatchErrorKind.NotInstalled,
                    "Patch " + patchId + " is not installed in process " + pid + " (" + target.Name + ")" + (caves.Count > 0 ? "; it was removed earlier and only its retired cave remains." : ".")) { ProcessId = pid };
            record.Module = cave.Header.Module;
            record.FileSha256 = Hex.Lower(cave.Header.FileSha256);

            bool caveFreed = false;
            string message = "";
            // Decided while every thread is stopped, done after they run again: once the sites hold their original
            // bytes and no thread is in a cave or may return into it, nothing can reach that cave any more, so
            // unmapping it need not hold the whole process still.
            var toFree = new List<FoundCave>();
            // A process with one thread is stopped once: what can be freed is unmapped within the freeze.
            bool freeWithin = target.Threads.AllocateWithinFreeze;
            int freedWithin = 0;
            var outcome = SiteWriter.Write(target, _options.StopTimeout, frozen =>
            {
                var writes = new List<SiteWrite>();
                foreach (var s in cave.Header.Sites)
                {
                    var cur = new byte[s.Written.Length];
                    target.Memory.Read(s.Address, cur);
                    if (cur.SequenceEqual(s.Written)) writes.Add(new SiteWrite(s.Address, s.Original, s.Written, "uninstall.after-site-" + (writes.Count + 1)));
                    else if (!cur.SequenceEqual(s.Original))
                        throw new HotpatchException(HotpatchErrorKind.SiteModified,
                            "Site 0x" + s.Address.ToString("x") + " of patch " + patchId + " in process " + pid + " no longer holds the patch's bytes (it holds " + Hex.Spaced(cur) +
                            "); something else changed it. Nothing was written.") { ProcessId = pid };
                }
                return writes;
            }, frozen =>
            {
                string? busy = CaveReader.InUse(target, frozen, cave);
                if (busy == null)
                {
                    toFree.Add(cave);
                    caveFreed = true;
                    message = "Original bytes restored; cave freed.";
                }
                else
                {
                    target.Memory.Write(cave.Address, CaveHeader.WithState(cave.HeaderBytes, CaveState.Retired));
                    message = "Original bytes restored; the cave at 0x" + cave.Address.ToString("x") + " is kept (retired) because " + busy + ".";
                }
                // Caves retired by earlier uninstalls are freed once no thread is in them or may return into them.
                toFree.AddRange(all.Where(c => c.Header.State == CaveState.Retired && CaveReader.InUse(target, frozen, c) == null));
                if (freeWithin) freedWithin = toFree.RemoveAll(c => FreeWithinFreeze(target, c));
            });
            FailPoint.Hit("uninstall.before-free");
            if (target.HasExited)
                throw new HotpatchException(HotpatchErrorKind.ProcessExited, "Process " + pid + " was killed, or ran another program, while patch " + patchId + " was being removed; nothing more was written to it.") { ProcessId = pid };
            foreach (var c in toFree)
            {
                // Every writer holds the lock, so the cave is still the one decided on; a writer that does not (an
                // older version, another tool) could have freed it and mapped another there: unmap only what is ours.
                if (!CaveReader.StillHolds(target, c)) { Log("cave at 0x" + c.Address.ToString("x") + " changed since it was read; not freed"); continue; }
                target.Memory.Free(c.Address, (int)c.Header.CaveSize);
            }
            int freed = toFree.Count + freedWithin;
            if (freed > (caveFreed ? 1 : 0)) Log("freed " + (freed - (caveFreed ? 1 : 0)) + " retired cave(s) no thread can reach any more");
            Log("uninstalled " + patchId + " from process " + pid + ": " + message + " " + outcome.Threads + " threads held for " + outcome.Held.TotalMilliseconds.ToString("0.000") + " ms (stop, restore, release)");
            return new UninstallResult(CaveReader.Describe(target, cave) with { State = PatchState.Removed }, caveFreed, message, outcome.Held);
        }

        /// <summary>True when the cave was unmapped; false leaves it to the free after the freeze, which reports what fails.</summary>
        private bool FreeWithinFreeze(ITargetProcess target, FoundCave c)
        {
            try
            {
                if (!TryFree(target, c, "cave", Log)) return false;
            }
            catch (HotpatchException e)
            {
                // Reading the header failed (the process was killed while held): the check after the freeze says so.
                Log("cave at 0x" + c.Address.ToString("x") + " not freed within the freeze: " + e.Message);
                return false;
            }
            Log("cave at 0x" + c.Address.ToString("x") + " unmapped within the freeze (one thread: one stop)");
            return true;
        }

        /// <summary>
        /// Unmaps a cave that nothing can reach any more, if it still holds the header it was read with (another tool
        /// could have freed it and mapped something else there); false, with a log line, when it changed or the unmap failed.
        /// </summary>
        internal static bool TryFree(ITargetProcess target, FoundCave c, string what, Action<string> log)
        {
            if (!CaveReader.StillHolds(target, c)) { log(what + " at 0x" + c.Address.ToString("x") + " changed since it was read; not freed"); return false; }
            try { target.Memory.Free(c.Address, (int)c.Header.CaveSize); }
            catch (HotpatchException e)
            {
                log(what + " at 0x" + c.Address.ToString("x") + " not freed: " + e.Message);
                return false;
            }
            return true;
        }

        /// <summary>
        /// Caves an installer marked and then died before the commit. This session holds the process's writer lock, so
        /// no installer is working on them, and no site was ever pointed at them: they are freed without a freeze.
        /// </summary>
        private UninstallResult FreeOrphans(ITargetProcess target, List<FoundCave> orphans, string patchId)
        {
            foreach (var c in orphans)
                if (CaveReader.StillHolds(target, c)) target.Memory.Free(c.Address, (int)c.Header.CaveSize);
            Log("freed " + orphans.Count + " orphaned cave(s) of " + patchId + " in process " + target.Id);
            return new UninstallResult(CaveReader.Describe(target, orphans[0]) with { State = PatchState.Removed }, CaveFreed: true,
                "An orphaned cave (its installer stopped before writing any site) was freed; no site was changed.", FreezeTime: TimeSpan.Zero);
        }
    }
}
