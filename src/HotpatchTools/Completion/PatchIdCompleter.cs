using System.Collections;
using System.Diagnostics;
using System.IO;
using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Patching;

namespace HotpatchTools.Completion
{
    /// <summary>
    /// -PatchId: ids installed in running processes (only those of -ProcessId when it is given) and ids of the
    /// micropatch files in the current folder.
    /// </summary>
    public sealed class PatchIdCompleter : PatchIdCompleterBase
    {
        private protected override IEnumerable<(string Id, string Tooltip)> Candidates(IDictionary? fakeBoundParameters)
        {
            // An id both installed and in a file in this folder is offered once, with both places.
            var found = new SortedDictionary<string, List<string>>(StringComparer.OrdinalIgnoreCase);
            foreach (var (id, where) in InstalledIds(BoundProcessIds(fakeBoundParameters)).Concat(FileIds()))
            {
                if (!found.TryGetValue(id, out var places)) found[id] = places = new List<string>();
                places.Add(where);
            }
            return found.Select(f => (f.Key, string.Join("; ", f.Value)));
        }

        private static readonly int CurrentProcessId = Process.GetCurrentProcess().Id;

        private static int[]? BoundProcessIds(IDictionary? fakeBoundParameters)
        {
            if (fakeBoundParameters == null || !fakeBoundParameters.Contains("ProcessId")) return null;
            try
            {
                return LanguagePrimitives.ConvertTo<int[]>(fakeBoundParameters["ProcessId"]);
            }
            catch (PSInvalidCastException)
            {
                return null;
            }
        }

        private static IEnumerable<(string Id, string Where)> InstalledIds(int[]? processIds)
        {
            HotpatchEngine engine;
            IEnumerable<int> pids;
            try
            {
                engine = new HotpatchEngine();
                // Kernel threads and this process cannot hold a patch; skipping them keeps the sweep to what a patch can be in,
                // so it needs no time limit (a limit returned nothing on a loaded machine).
                pids = processIds ?? engine.Platform.ListProcesses().Select(p => p.Id).Where(id => id != CurrentProcessId && !ProcessIdCompleter.IsKernelThread(id));
            }
            // An unsupported platform or an unreadable process list: nothing to offer, and completion must not fail.
            catch (Exception e) when (e is HotpatchException || e is IOException || e is UnauthorizedAccessException)
            {
                return Enumerable.Empty<(string, string)>();
            }
            var installed = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
            foreach (int pid in pids)
            {
                try
                {
                    // A retired patch is already uninstalled; only its cave is kept for a thread that may return into it.
                    foreach (var patch in engine.GetInstalled(pid))
                        if (patch.State != HotpatchTools.Engine.Patching.PatchState.Retired) installed[patch.PatchId] = installed.TryGetValue(patch.PatchId, out int n) ? n + 1 : 1;
                }
                // Exited, protected or foreign processes (and this one) have nothing to offer.
                catch (HotpatchException) { }
            }
            return installed.Select(i => (i.Key, "installed in " + i.Value + (i.Value == 1 ? " process" : " processes")));
        }

        private static IEnumerable<(string Id, string Where)> FileIds()
        {
            var folder = CompletionText.SessionDirectory();
            if (folder == null) return Enumerable.Empty<(string, string)>();
            var ids = new List<(string, string)>();
            try
            {
                foreach (var file in Directory.EnumerateFiles(folder))
                {
                    if (!file.EndsWith(MicropatchPathCompleter.Extension, StringComparison.OrdinalIgnoreCase)) continue;
                    try { ids.Add((MicropatchParser.Load(file).Id, Path.GetFileName(file))); }
                    // A file that does not parse has no id to offer; Install-Micropatch will say what is wrong with it.
                    catch (HotpatchException) { }
                }
            }
            // An unreadable folder has no files to offer.
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException) { }
            return ids;
        }
    }
}
