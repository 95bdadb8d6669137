namespace HotpatchTools.Engine.Modules
{
    /// <summary>Opens a module file for a reader and turns every I/O failure into an error that names the file and the cause.</summary>
    internal static class ModuleFile
    {
        /// <summary>
        /// Exactly `count` bytes at `offset`, checked against the file's length before anything is allocated,
        /// so a corrupt header cannot make a reader ask for more than the file holds.
        /// </summary>
        public static byte[] ReadExact(Stream stream, ulong length, ulong offset, ulong count, string what, Func<string, ModuleFormatException> invalid)
        {
            if (offset > length || count > length - offset) throw invalid(what + " lies outside the file");
            if (count > int.MaxValue) throw invalid(what + " is too large");
            var buffer = new byte[count];
            stream.Position = (long)offset;
            int done = 0;
            while (done < buffer.Length)
            {
                int n = stream.Read(buffer, done, buffer.Length - done);
                if (n == 0) throw invalid(what + " is truncated");
                done += n;
            }
            return buffer;
        }

        /// <summary>Larger than any real module file: a file beyond it is not hashed.</summary>
        public const long MaxHashBytes = 1L << 30;
        /// <summary>How long hashing one module file may take before its identity counts as unverifiable.</summary>
        public static readonly TimeSpan MaxHashTime = TimeSpan.FromSeconds(20);

        /// <summary>
        /// SHA-256 (lowercase hex) of a module file, cached per file identity (device:inode or path, size, modification
        /// time) so a file replaced in place is hashed again. A file larger than any module, or one that takes too long
        /// to read, is refused: a local user could otherwise map a sparse file of many gigabytes under a module's name
        /// and make every sweep hash it for minutes.
        /// </summary>
        public static string Sha256(string path, string key, string displayName)
        {
            return Read(path, stream =>
            {
                long size = stream.Length;
                if (size > MaxHashBytes)
                    throw new HotpatchException(HotpatchErrorKind.IdentityMismatch,
                        displayName + " is " + size + " bytes, larger than any module (" + MaxHashBytes + "); its SHA-256 is not computed, so a patch that names one does not apply.");
                long mtime = File.GetLastWriteTimeUtc(path).Ticks;
                // A refusal is cached too: a watch must not spend the time bound on the same file in every pass.
                string hash = ModuleCache.GetOrAdd("sha|" + key + "|" + size + "|" + mtime, () =>
                {
                    var clock = System.Diagnostics.Stopwatch.StartNew();
                    using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
                    var buffer = new byte[1 << 20];
                    int n;
                    while ((n = stream.Read(buffer, 0, buffer.Length)) > 0)
                    {
                        sha.AppendData(buffer, 0, n);
                        if (clock.Elapsed > MaxHashTime) return "!could not be hashed within " + MaxHashTime.TotalSeconds + " s";
                    }
                    return Hex.Lower(sha.GetHashAndReset());
                });
                if (hash.StartsWith("!", StringComparison.Ordinal))
                    throw new HotpatchException(HotpatchErrorKind.IdentityMismatch,
                        displayName + " " + hash.Substring(1) + "; its SHA-256 is not verified, so a patch that names one does not apply.");
                return hash;
            });
        }

        public static T Read<T>(string path, Func<FileStream, T> read)
        {
            if (path == null) throw new ArgumentNullException(nameof(path));
            FileStream stream;
            try
            {
                stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            }
            catch (Exception e) when (HotpatchException.ForFile(e, path, "open", HotpatchErrorKind.ModuleNotLoaded, HotpatchErrorKind.AccessDenied,
                HotpatchErrorKind.Internal) is HotpatchException problem)
            {
                throw problem;
            }

            using (stream)
            {
                try
                {
                    return read(stream);
                }
                catch (IOException e)
                {
                    throw new HotpatchException(HotpatchErrorKind.Internal, path + ": cannot read the file: " + e.Message, e);
                }
            }
        }
    }
}
