using System;
using System.IO;
using System.Security;

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

        public static T Read<T>(string path, Func<FileStream, T> read)
        {
            if (path == null) throw new ArgumentNullException(nameof(path));
            FileStream stream;
            try
            {
                stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            }
            catch (Exception e) when (e is FileNotFoundException || e is DirectoryNotFoundException)
            {
                throw new HotpatchException(HotpatchErrorKind.ModuleNotLoaded, path + ": file not found", e);
            }
            catch (Exception e) when (e is UnauthorizedAccessException || e is SecurityException)
            {
                throw new HotpatchException(HotpatchErrorKind.AccessDenied, path + ": access denied", e);
            }
            catch (Exception e) when (e is IOException || e is ArgumentException || e is NotSupportedException)
            {
                throw new HotpatchException(HotpatchErrorKind.Internal, path + ": cannot open the file: " + e.Message, e);
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
