using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Inspection;
using HotpatchTools.Engine.Modules;
using HotpatchTools.Engine.Patching;
using HotpatchTools.Engine.Platform.Offline;

namespace HotpatchTools.Engine.Authoring
{
    public enum OfflineCheckState
    {
        /// <summary>Every check passed: installing into a process with this file loaded would go ahead.</summary>
        Applies,
        /// <summary>Another build: an identity field or the expected bytes differ.</summary>
        Mismatch,
        /// <summary>This build, but a safety rule refuses a site (named in the reason).</summary>
        Unsupported,
        /// <summary>The file is not the patch's module (another name, OS or architecture).</summary>
        NotApplicable,
    }

    /// <summary>One patch checked against one module file on disk.</summary>
    public sealed class OfflineCheckResult
    {
        public string PatchId { get; set; } = "";
        public string ModulePath { get; set; } = "";
        public OfflineCheckState State { get; set; }
        public string Reason { get; set; } = "";
        public HotpatchErrorKind? ErrorKind { get; set; }
        /// <summary>Where it applies: each site and the code of its cave as the engine would build it (patch code, relocated instructions, jump back).</summary>
        public IReadOnlyList<string> Listing { get; set; } = new string[0];
    }

    /// <summary>
    /// Checks a patch against module files with no process: the file is laid out as the loader maps it and the
    /// engine plans — and, where that passes, installs — the patch there exactly as in a live process, so the
    /// answer and the cave listing are the install's own, not a second implementation of its rules.
    /// </summary>
    public static class OfflineCheck
    {
        /// <summary>Files looked at in one folder, so a mistyped root cannot walk the whole disk.</summary>
        public const int MaxFolderFiles = 20000;

        public static OfflineCheckResult Check(Micropatch patch, string modulePath) =>
            Check(patch, new ImageProcess(modulePath), modulePath);

        internal static OfflineCheckResult Check(Micropatch patch, ImageProcess image, string modulePath)
        {
            var result = new OfflineCheckResult { PatchId = patch.Id, ModulePath = modulePath };
            bool windows = image.Image.Format == ModuleFormat.Pe;
            if ((patch.Target.Os == TargetOs.Windows) != windows || (patch.Target.Arch == TargetArch.X64 ? 64 : 32) != image.Bitness)
            {
                result.State = OfflineCheckState.NotApplicable;
                result.Reason = image.Name + " is a " + (windows ? "Windows" : "Linux") + " " + (image.Bitness == 64 ? TargetArch.X64 : TargetArch.X86).FileName() + " module; the patch is for "
                    + patch.Target.Os.FileName() + " " + patch.Target.Arch.FileName() + ".";
                return result;
            }
            var platform = new OfflinePlatform(image);
            var engine = new HotpatchEngine(platform);
            TargetStatus? status;
            try { status = engine.Inspect(patch, ImageProcess.ProcessId); }
            catch (HotpatchException e) { return Refused(result, OfflineCheckState.Unsupported, e); }
            switch (status?.State)
            {
                case TargetState.Vulnerable:
                    result.State = OfflineCheckState.Applies;
                    result.Reason = status.Reason;
                    break;
                case TargetState.NotLoaded:
                    result.State = OfflineCheckState.NotApplicable;
                    result.Reason = image.Name + " is not " + patch.Target.Module + ".";
                    result.ErrorKind = status.ErrorKind;
                    return result;
                case TargetState.Mismatch:
                    result.State = OfflineCheckState.Mismatch;
                    result.Reason = status.Reason;
                    result.ErrorKind = status.ErrorKind;
                    return result;
                default:
                    result.State = OfflineCheckState.Unsupported;
                    result.Reason = status?.Reason ?? "";
                    result.ErrorKind = status?.ErrorKind;
                    return result;
            }

            // The listing is the cave the install builds in the laid-out file: nothing here touches a live process.
            try
            {
                engine.Install(patch, ImageProcess.ProcessId);
                var sites = new ProcessInspector(platform).GetSites(patch, ImageProcess.ProcessId);
                result.Listing = sites.SelectMany(s => new[] { "; " + s.Patchlet + " at 0x" + s.Address.ToString("x") + (s.Symbol.Length > 0 ? " (" + s.Symbol + ")" : "") }
                    .Concat(s.Disassembly)).ToList();
            }
            catch (HotpatchException e) { return Refused(result, OfflineCheckState.Unsupported, e); }
            return result;
        }

        private static OfflineCheckResult Refused(OfflineCheckResult r, OfflineCheckState state, HotpatchException e)
        {
            r.State = e.Kind == HotpatchErrorKind.IdentityMismatch || e.Kind == HotpatchErrorKind.ExpectMismatch ? OfflineCheckState.Mismatch : state;
            r.Reason = e.Message;
            r.ErrorKind = e.Kind;
            return r;
        }

        /// <summary>
        /// The module files under a folder (its subfolders too, not through links): files that begin as an ELF or
        /// PE image does. At most <see cref="MaxFolderFiles"/> files are looked at; more is an error, not a silent cut.
        /// </summary>
        public static IEnumerable<string> ModuleFiles(string folder)
        {
            int seen = 0;
            var folders = new Stack<string>();
            folders.Push(folder);
            while (folders.Count > 0)
            {
                string dir = folders.Pop();
                string[] files, subdirs;
                try
                {
                    files = Directory.GetFiles(dir);
                    subdirs = Directory.GetDirectories(dir);
                }
                catch (Exception e) when (e is IOException || e is UnauthorizedAccessException) { continue; }
                Array.Sort(files, StringComparer.Ordinal);
                foreach (var path in files)
                {
                    if (++seen > MaxFolderFiles)
                        throw new HotpatchException(HotpatchErrorKind.Internal, folder + " holds more than " + MaxFolderFiles + " files; name a narrower folder.");
                    if (LooksLikeModule(path)) yield return path;
                }
                Array.Sort(subdirs, StringComparer.Ordinal);
                for (int i = subdirs.Length - 1; i >= 0; i--)
                {
                    // A link to a folder could lead back up the tree.
                    try { if ((File.GetAttributes(subdirs[i]) & FileAttributes.ReparsePoint) != 0) continue; }
                    catch (Exception e) when (e is IOException || e is UnauthorizedAccessException) { continue; }
                    folders.Push(subdirs[i]);
                }
            }
        }

        private static bool LooksLikeModule(string path)
        {
            var head = new byte[4];
            // Opened as a module is: a folder may hold a FIFO, whose plain open would block the scan until someone writes to it.
            try { if (ModuleFile.Read(path, f => f.Read(head, 0, 4)) < 2) return false; }
            catch (HotpatchException) { return false; }
            return (head[0] == 'M' && head[1] == 'Z') || (head[0] == 0x7f && head[1] == 'E' && head[2] == 'L' && head[3] == 'F');
        }
    }
}
