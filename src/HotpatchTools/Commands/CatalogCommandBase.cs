using HotpatchTools.Engine.Catalog;
using HotpatchTools.Engine.Format;

namespace HotpatchTools.Commands
{
    /// <summary>What the cmdlets that read or change the machine catalog share.</summary>
    public abstract class CatalogCommandBase : HotpatchCommandBase
    {
        /// <summary>The parameter sets of a cmdlet that takes patches by file (wildcards or literal) or by catalog id.</summary>
        internal const string PathSet = "Path", LiteralPathSet = "LiteralPath", CatalogSet = "Catalog";

        private MicropatchCatalog? _catalog;

        /// <summary>Where MachinePaths says, read when first used so a test's override (set before the command) applies.</summary>
        internal MicropatchCatalog Catalog => _catalog ??= new MicropatchCatalog();

        /// <summary>
        /// Catalog writes and enforcement need what installing needs: root or an elevated administrator, and an
        /// audit log that takes records. Anything less is a terminating NotElevated (or AuditFailed) up front.
        /// </summary>
        internal void RequireElevation(string what) => RequireElevationAndAudit(what);

        /// <summary>Entries whose id matches any of the patterns (wildcards, ignoring case); every entry without patterns.</summary>
        internal List<CatalogEntry> SelectEntries(string[]? patterns, Action<string, string>? onBroken = null)
        {
            var all = Catalog.List(onBroken);
            if (patterns == null || patterns.Length == 0) return all.ToList();
            var wildcards = patterns.Select(p => new WildcardPattern(p, WildcardOptions.IgnoreCase)).ToList();
            return all.Where(e => wildcards.Any(w => w.IsMatch(e.PatchId))).ToList();
        }

        /// <summary>Exactly one entry by id (no wildcards: the id names one patch), or an error record and null.</summary>
        internal CatalogEntry? FindEntry(string patchId)
        {
            var entry = Catalog.Find(patchId);
            if (entry == null)
                WriteError(new ErrorRecord(new ItemNotFoundException("Patch " + patchId + " is not registered in the catalog (" + Catalog.Directory + ")."),
                    "PatchNotRegistered", ErrorCategory.ObjectNotFound, patchId));
            return entry;
        }

        /// <summary>
        /// Each patch the parameter set names, handed to <paramref name="use"/>: by catalog id (an entry
        /// <paramref name="admit"/> turns down is skipped; it says why), or by path, resolved and read by
        /// <paramref name="loadFile"/> (with <paramref name="admit"/>, a path to a catalog copy is taken as its entry).
        /// A patch that cannot be had is an error record already and is skipped.
        /// </summary>
        internal void ForEachPatch(string[] patchIds, string[] paths, Func<string, Micropatch?> loadFile, Action<Micropatch> use,
            Func<CatalogEntry, bool>? admit = null)
        {
            if (ParameterSetName == CatalogSet)
            {
                foreach (var id in patchIds)
                {
                    var entry = FindEntry(id);
                    if (entry == null || (admit != null && !admit(entry))) continue;
                    if (LoadCatalogPatch(entry) is Micropatch fromCatalog) use(fromCatalog);
                }
                return;
            }
            foreach (var file in ResolvePaths(paths, literal: ParameterSetName == LiteralPathSet))
            {
                // The catalog's own copy, as the Path of Get-MicropatchCatalog's and Get-HotpatchTarget -PatchId's objects
                // (piped to Install-Micropatch): it is its entry, with the entry's AllowUnsigned and the entry's admission
                // (a disabled entry is withdrawn), not a loose file that a pipeline could install past Disable-Micropatch.
                if (admit != null && EntryOfCopy(file) is CatalogEntry entry)
                {
                    if (admit(entry) && LoadCatalogPatch(entry) is Micropatch fromCatalog) use(fromCatalog);
                    continue;
                }
                if (loadFile(file) is Micropatch patch) use(patch);
            }
        }

        /// <summary>The entry whose copy <paramref name="file"/> is, or null for a file outside the catalog.</summary>
        private CatalogEntry? EntryOfCopy(string file)
        {
            string dir = System.IO.Path.GetFullPath(Catalog.Directory).TrimEnd(System.IO.Path.DirectorySeparatorChar) + System.IO.Path.DirectorySeparatorChar;
            string full = System.IO.Path.GetFullPath(file);
            var comparison = Engine.Platform.Os == TargetOs.Windows ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
            if (!full.StartsWith(dir, comparison)) return null;
            return Catalog.List().FirstOrDefault(e => string.Equals(System.IO.Path.GetFullPath(e.PatchPath), full, comparison));
        }

        /// <summary>
        /// The one place a catalog entry becomes a patch: its files must be writable only by administrators, the
        /// copy must still be the file that was registered, and it is loaded like any patch file, with the
        /// entry's AllowUnsigned. A problem is an error record (target: the patch id) and null.
        /// </summary>
        internal Micropatch? LoadCatalogPatch(CatalogEntry entry)
        {
            // Replaced (-Force) or unregistered since the entry was listed: the entry as it is now, if any.
            if (!System.IO.File.Exists(entry.PatchPath))
            {
                var now = Catalog.Find(entry.PatchId);
                if (now == null)
                {
                    WriteError(new ErrorRecord(new ItemNotFoundException("Patch " + entry.PatchId + " was unregistered meanwhile."), "PatchNotRegistered", ErrorCategory.ObjectNotFound, entry.PatchId));
                    return null;
                }
                entry = now;
            }
            var dir = System.IO.Path.GetDirectoryName(entry.PatchPath)!;
            foreach (var path in new[] { Catalog.Directory, dir, entry.PatchPath, entry.SignaturePath })
            {
                if (path == null) continue;
                var why = CatalogSecurity.Untrusted(path);
                if (why == null) continue;
                WriteError(new ErrorRecord(new HotpatchException(HotpatchErrorKind.InvalidPatchFile, "Catalog entry " + entry.PatchId + " is not used: " + why + "."),
                    "CatalogEntryUntrusted", ErrorCategory.SecurityError, entry.PatchId));
                return null;
            }
            var patch = LoadPatch(entry.PatchPath, entry.AllowUnsigned);
            if (patch == null) return null;
            if (patch.FileSha256 != entry.FileSha256 || !string.Equals(patch.Id, entry.PatchId, StringComparison.OrdinalIgnoreCase))
            {
                WriteError(new ErrorRecord(new HotpatchException(HotpatchErrorKind.InvalidPatchFile,
                    "Catalog entry " + entry.PatchId + " is not used: its file was changed after registration (SHA-256 " + patch.FileSha256 + ", registered " + entry.FileSha256 + ")."),
                    "CatalogEntryModified", ErrorCategory.SecurityError, entry.PatchId));
                return null;
            }
            return patch;
        }
    }
}
