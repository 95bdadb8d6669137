using System;
using System.IO;
using System.Security;

namespace HotpatchTools.Engine.Modules
{
    /// <summary>Opens a module file for a reader and turns every I/O failure into an error that names the file and the cause.</summary>
    internal static class ModuleFile
    {
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
