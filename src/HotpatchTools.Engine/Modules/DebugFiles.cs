namespace HotpatchTools.Engine.Modules
{
    /// <summary>
    /// Separate debug files, found as gdb finds them: by build-id (DIR/.build-id/ab/cdef….debug) and by
    /// .gnu_debuglink (next to the module, in its .debug/ folder, and DIR/&lt;module's folder&gt;/NAME), in
    /// /usr/lib/debug, in the folders a cmdlet's -DebugDirectory names (<see cref="Use"/>) and in those an admin
    /// lists in HOTPATCH_DEBUG_DIRECTORY (separated by ':').
    /// A candidate whose build-id is not the module's is not used: symbols of another build would name wrong code.
    /// </summary>
    public static class DebugFiles
    {
        public const string EnvironmentVariable = "HOTPATCH_DEBUG_DIRECTORY";
        public const string SystemDirectory = "/usr/lib/debug";

        private static readonly System.Threading.AsyncLocal<string[]?> Scoped = new System.Threading.AsyncLocal<string[]?>();

        /// <summary>
        /// Folders searched (before the environment variable's) by what runs on this call path until the result is
        /// disposed: a cmdlet's -DebugDirectory, without changing what other commands in the process see.
        /// </summary>
        public static IDisposable Use(IEnumerable<string>? directories)
        {
            var before = Scoped.Value;
            var list = directories?.Where(d => !string.IsNullOrEmpty(d)).ToArray();
            if (list != null)
                foreach (var d in list)
                    if (!Path.IsPathRooted(d)) throw new ArgumentException("A debug directory must be a full path: " + d, nameof(directories));
            Scoped.Value = list != null && list.Length > 0 ? list : before;
            return new Restore(() => Scoped.Value = before);
        }

        private sealed class Restore : IDisposable
        {
            private Action? _undo;
            public Restore(Action undo) => _undo = undo;
            public void Dispose()
            {
                _undo?.Invoke();
                _undo = null;
            }
        }

        /// <summary>The folders searched, admin-configured ones first (a configured build of a library wins over the package's).</summary>
        public static IReadOnlyList<string> Directories()
        {
            var dirs = new List<string>();
            if (Scoped.Value != null)
                foreach (var d in Scoped.Value) dirs.Add(d.Length > 1 ? d.TrimEnd('/', '\\') : d);
            var configured = Environment.GetEnvironmentVariable(EnvironmentVariable);
            if (!string.IsNullOrEmpty(configured))
                foreach (var d in configured!.Split(new[] { Path.PathSeparator }, StringSplitOptions.RemoveEmptyEntries))
                    if (Path.IsPathRooted(d)) dirs.Add(d.TrimEnd('/'));
            dirs.Add(SystemDirectory);
            return dirs;
        }

        /// <summary>
        /// The image with its debug file's symbols added, or the image itself when no matching debug file exists.
        /// <paramref name="modulePath"/> is where the module lies as its process names it (for .gnu_debuglink).
        /// </summary>
        internal static ElfImage Attach(ElfImage image, string modulePath)
        {
            if (image.BuildId == null) return image;
            foreach (var candidate in Candidates(image, modulePath))
            {
                if (!File.Exists(candidate)) continue;
                ElfImage debug;
                // A broken or unreadable debug file does not stop patching by exported names and unwind bounds.
                try { debug = ElfImage.Load(candidate); }
                catch (HotpatchException) { continue; }
                if (string.Equals(debug.BuildId, image.BuildId, StringComparison.Ordinal))
                    return image.WithDebugSymbols(debug, candidate);
            }
            return image;
        }

        internal static IEnumerable<string> Candidates(ElfImage image, string modulePath)
        {
            var dirs = Directories();
            string id = image.BuildId!;
            if (id.Length > 2)
                foreach (var d in dirs) yield return d + "/.build-id/" + id.Substring(0, 2) + "/" + id.Substring(2) + ".debug";
            if (image.DebugLink == null) yield break;
            string? folder = Path.GetDirectoryName(modulePath);
            if (string.IsNullOrEmpty(folder) || !folder!.StartsWith("/", StringComparison.Ordinal)) yield break;
            yield return folder + "/" + image.DebugLink;
            yield return folder + "/.debug/" + image.DebugLink;
            foreach (var d in dirs) yield return d + folder + "/" + image.DebugLink;
        }

        /// <summary>Part of a module cache key: a changed setting must not serve images found under the old one.</summary>
        internal static string CacheKey() => string.Join(":", Directories());
    }
}
