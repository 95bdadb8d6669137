using System.Globalization;
using System.Text;
using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Machine;

namespace HotpatchTools.Engine.Catalog
{
    /// <summary>One registered patch: its copy in the catalog and whether enforcement applies it.</summary>
    /// <param name="FileSha256">SHA-256 of the registered file, lowercase hex; the copy must still hash to it when it is loaded.</param>
    /// <param name="PatchPath">The catalog's copy of the patch file.</param>
    /// <param name="SignaturePath">The copy of the detached signature, or null when none was registered.</param>
    /// <param name="SourcePath">Where the file was registered from (informational only: the catalog never reads it again).</param>
    public sealed record CatalogEntry(
        string PatchId, string Title, string Module, bool Enabled, bool AllowUnsigned, string FileSha256, DateTime RegisteredUtc,
        string PatchPath, string? SignaturePath, string SourcePath);

    /// <summary>
    /// The machine-wide patch catalog: one folder per patch id holding a copy of the patch file (and its
    /// detached signature) and a small state file. Every change becomes visible through one rename, so a
    /// reader (an enforcement pass running every few seconds) sees an entry whole or not at all.
    /// </summary>
    public sealed class MicropatchCatalog
    {
        internal const string StateFileName = "entry.state";
        private const string PatchFileSuffix = ".micropatch.yaml";
        private const string SignatureSuffix = ".sig";
        // Names a reader skips: a half-built entry or one being replaced.
        private const string ScratchPrefix = ".";

        public MicropatchCatalog(string? directory = null)
        {
            Directory = directory ?? MachinePaths.CatalogDirectory;
        }

        public string Directory { get; }

        // ---- reading ----

        /// <summary>Every entry, in id order; an entry whose state file cannot be read is skipped and reported through onBroken.</summary>
        public IReadOnlyList<CatalogEntry> List(Action<string, string>? onBroken = null)
        {
            var entries = new List<CatalogEntry>();
            if (!System.IO.Directory.Exists(Directory)) return entries;
            foreach (var dir in System.IO.Directory.EnumerateDirectories(Directory))
            {
                var name = Path.GetFileName(dir);
                if (name.StartsWith(ScratchPrefix, StringComparison.Ordinal)) continue;
                for (int attempt = 1; ; attempt++)
                {
                    try { entries.Add(Read(dir)); break; }
                    // Renamed away (unregistered, or replaced by -Force) after the folder was listed: gone, or back as
                    // the new version, which the next attempt reads.
                    catch (IOException) when (!System.IO.Directory.Exists(dir)) { break; }
                    catch (IOException) when (attempt < 3) { }
                    catch (Exception e) when (e is IOException || e is UnauthorizedAccessException || e is FormatException)
                    {
                        onBroken?.Invoke(name, e.Message);
                        break;
                    }
                }
            }
            entries.Sort((a, b) => string.Compare(a.PatchId, b.PatchId, StringComparison.OrdinalIgnoreCase));
            return entries;
        }

        public CatalogEntry? Find(string patchId) =>
            List().FirstOrDefault(e => string.Equals(e.PatchId, patchId, StringComparison.OrdinalIgnoreCase));

        public CatalogEntry Get(string patchId) =>
            Find(patchId) ?? throw new HotpatchException(HotpatchErrorKind.NotInstalled, "Patch " + patchId + " is not registered in the catalog (" + Directory + ").");

        private static CatalogEntry Read(string dir)
        {
            var values = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var line in ReadStateLines(Path.Combine(dir, StateFileName)))
            {
                if (line.Length == 0 || line[0] == '#') continue;
                int eq = line.IndexOf('=');
                if (eq <= 0) throw new FormatException(dir + ": '" + line + "' is not key=value");
                values[line.Substring(0, eq)] = Unescape(line.Substring(eq + 1));
            }
            string Value(string key) => values.TryGetValue(key, out var v) ? v : throw new FormatException(dir + ": no " + key + " in " + StateFileName);
            if (Value("format") != "1") throw new FormatException(dir + ": state format " + Value("format") + " is not supported");
            string fileName = Value("file");
            // The copy lies in the entry's own folder: a name that is a path would make the entry load a file elsewhere.
            if (fileName.Length == 0 || fileName == "." || fileName == ".." || fileName.IndexOfAny(new[] { '/', '\\', '\0' }) >= 0 || Path.IsPathRooted(fileName))
                throw new FormatException(dir + ": file '" + fileName + "' in " + StateFileName + " is not a file name");
            var file = Path.Combine(dir, fileName);
            var sig = file + SignatureSuffix;
            return new CatalogEntry(
                Value("id"),
                Value("title"),
                Value("module"),
                Enabled: Value("enabled") == "true",
                AllowUnsigned: Value("allowUnsigned") == "true",
                Value("sha256"),
                DateTime.ParseExact(Value("registered"), "o", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal),
                file,
                File.Exists(sig) ? sig : null,
                values.TryGetValue("source", out var s) ? s : "");
        }

        /// <summary>Far above any state the catalog writes (ten short fields, a title and a source path among them).</summary>
        private const int MaxStateBytes = 64 << 10;

        /// <summary>The state file's lines, read only up to a bound: a state file of gigabytes is broken, not read whole by every pass.</summary>
        private static List<string> ReadStateLines(string path)
        {
            byte[] bytes;
            using (var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
            {
                if (f.Length > MaxStateBytes) throw new FormatException(path + " is " + f.Length + " bytes, more than any entry's state (" + MaxStateBytes + ")");
                bytes = new byte[f.Length];
                int read = 0, n;
                while (read < bytes.Length && (n = f.Read(bytes, read, bytes.Length - read)) > 0) read += n;
                if (read < bytes.Length) throw new IOException(path + " shrank while it was being read");
            }
            var lines = new List<string>();
            using (var reader = new StreamReader(new MemoryStream(bytes), Encoding.UTF8))
                for (string? line; (line = reader.ReadLine()) != null;) lines.Add(line);
            return lines;
        }

        // ---- writing ----

        /// <summary>
        /// Copies a parsed patch file (and its .sig beside it, if any) into the catalog. The same content under
        /// the same id is a no-op that returns the existing entry; different content needs replace.
        /// </summary>
        public CatalogEntry Register(Micropatch patch, string sourcePath, bool enabled, bool allowUnsigned, bool replace)
        {
            CheckIdIsAFolderName(patch.Id);
            var bytes = File.ReadAllBytes(sourcePath);
            // The file is copied after it was parsed: a file changed in between is not the file that was checked.
            if (Hex.Lower(Sha256(bytes)) != patch.FileSha256)
                throw new HotpatchException(HotpatchErrorKind.InvalidPatchFile, sourcePath + " changed while it was being registered; nothing was registered.");
            var sigSource = sourcePath + SignatureSuffix;
            byte[]? sig = File.Exists(sigSource) ? File.ReadAllBytes(sigSource) : null;

            var existing = Find(patch.Id);
            if (existing != null && !replace)
            {
                if (existing.FileSha256 == patch.FileSha256) return existing;
                throw new HotpatchException(HotpatchErrorKind.AlreadyInstalled,
                    "Patch " + patch.Id + " is already registered with different content (SHA-256 " + existing.FileSha256 + "); it is replaced only when replacing is asked for.");
            }

            SecureFiles.EnsureAdminDirectory(Directory);
            var staging = Path.Combine(Directory, ScratchPrefix + "new-" + Guid.NewGuid().ToString("N"));
            try
            {
                SecureFiles.EnsureAdminDirectory(staging);
                // The name carries the content's hash and a file is never rewritten in place: a reader that read the
                // state finds exactly the file it names, or (replaced meanwhile) none, never another version's file.
                string fileName = patch.Id + "-" + patch.FileSha256.Substring(0, 12) + PatchFileSuffix;
                WriteFile(Path.Combine(staging, fileName), bytes);
                if (sig != null) WriteFile(Path.Combine(staging, fileName + SignatureSuffix), sig);
                // Where the copy lands is known after the move below: the state file names it relative to its folder.
                var entry = new CatalogEntry(patch.Id, patch.Title, patch.Target.Module, enabled, allowUnsigned,
                    patch.FileSha256, DateTime.UtcNow, PatchPath: "", SignaturePath: null, Path.GetFullPath(sourcePath));
                WriteFile(Path.Combine(staging, StateFileName), Serialize(entry, fileName));

                var final = Path.Combine(Directory, existing != null ? Path.GetFileName(Path.GetDirectoryName(existing.PatchPath)!) : patch.Id);
                string? old = null;
                if (existing != null)
                {
                    old = Path.Combine(Directory, ScratchPrefix + "old-" + Guid.NewGuid().ToString("N"));
                    System.IO.Directory.Move(final, old);
                    // The entry reappears under the id as spelled in the new file.
                    final = Path.Combine(Directory, patch.Id);
                }
                try { System.IO.Directory.Move(staging, final); }
                catch (IOException) when (old != null)
                {
                    System.IO.Directory.Move(old, Path.Combine(Directory, Path.GetFileName(Path.GetDirectoryName(existing!.PatchPath)!)));
                    throw;
                }
                catch (IOException e) when (System.IO.Directory.Exists(final))
                {
                    throw new HotpatchException(HotpatchErrorKind.AlreadyInstalled, "Patch " + patch.Id + " was registered by someone else meanwhile; nothing was changed.", e);
                }
                if (old != null) TryDelete(old);
                return Read(final);
            }
            finally
            {
                TryDelete(staging);
            }
        }

        public CatalogEntry SetEnabled(string patchId, bool enabled)
        {
            var entry = Get(patchId);
            if (entry.Enabled == enabled) return entry;
            entry = entry with { Enabled = enabled };
            var dir = Path.GetDirectoryName(entry.PatchPath)!;
            var state = Path.Combine(dir, StateFileName);
            var tmp = Path.Combine(dir, ScratchPrefix + StateFileName + "-" + Guid.NewGuid().ToString("N"));
            WriteFile(tmp, Serialize(entry, Path.GetFileName(entry.PatchPath)));
            // Replace is one rename on Linux and ReplaceFile on Windows: a reader sees the old state or the new one.
            File.Replace(tmp, state, null);
            return Read(dir);
        }

        public CatalogEntry Unregister(string patchId)
        {
            var entry = Get(patchId);
            var dir = Path.GetDirectoryName(entry.PatchPath)!;
            // Out of sight in one rename, then deleted at leisure.
            var gone = Path.Combine(Directory, ScratchPrefix + "del-" + Guid.NewGuid().ToString("N"));
            System.IO.Directory.Move(dir, gone);
            TryDelete(gone);
            return entry;
        }

        // ---- helpers ----

        private static void WriteFile(string path, byte[] bytes)
        {
            using (var f = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                f.Write(bytes, 0, bytes.Length);
                f.Flush(true);
            }
            SecureFiles.MakeAdminFile(path);
        }

        private static byte[] Serialize(CatalogEntry e, string fileName)
        {
            var sb = new StringBuilder();
            sb.Append("# HotpatchTools catalog entry; change it with Enable-/Disable-/Unregister-Micropatch.\n");
            void Add(string key, string value) => sb.Append(key).Append('=').Append(Escape(value)).Append('\n');
            Add("format", "1");
            Add("id", e.PatchId);
            Add("title", e.Title);
            Add("module", e.Module);
            Add("enabled", e.Enabled ? "true" : "false");
            Add("allowUnsigned", e.AllowUnsigned ? "true" : "false");
            Add("sha256", e.FileSha256);
            Add("registered", e.RegisteredUtc.ToUniversalTime().ToString("o", CultureInfo.InvariantCulture));
            Add("file", fileName);
            Add("source", e.SourcePath);
            return new UTF8Encoding(false).GetBytes(sb.ToString());
        }

        private static string Escape(string s) => s.Replace("\\", "\\\\").Replace("\n", "\\n").Replace("\r", "\\r");

        private static string Unescape(string s)
        {
            if (s.IndexOf('\\') < 0) return s;
            var sb = new StringBuilder(s.Length);
            for (int i = 0; i < s.Length; i++)
            {
                if (s[i] != '\\' || i + 1 == s.Length) { sb.Append(s[i]); continue; }
                char c = s[++i];
                sb.Append(c == 'n' ? '\n' : c == 'r' ? '\r' : c);
            }
            return sb.ToString();
        }

        private static byte[] Sha256(byte[] bytes)
        {
            using var sha = System.Security.Cryptography.SHA256.Create();
            return sha.ComputeHash(bytes);
        }

        private static readonly string[] DeviceNames = { "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9" };

        // The parser already limits ids to letters, digits, '.', '_' and '-' after an alphanumeric first character,
        // so no id climbs out of the catalog; Windows still refuses device names as folder names, on every OS the
        // catalog might be copied to.
        private static void CheckIdIsAFolderName(string id)
        {
            var stem = id.Split('.')[0];
            if (DeviceNames.Contains(stem, StringComparer.OrdinalIgnoreCase))
                throw new HotpatchException(HotpatchErrorKind.InvalidPatchFile, "Patch id " + id + " is a Windows device name and cannot name a catalog folder.");
        }

        private static void TryDelete(string dir)
        {
            try { if (System.IO.Directory.Exists(dir)) System.IO.Directory.Delete(dir, recursive: true); }
            // A leftover scratch folder is skipped by every reader; the next write does not depend on its removal.
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }
}
