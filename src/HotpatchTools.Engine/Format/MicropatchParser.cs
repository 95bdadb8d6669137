using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using YamlDotNet.RepresentationModel;

namespace HotpatchTools.Engine.Format
{
    /// <summary>
    /// Reads micropatch files (format 1) strictly: the first problem found
    /// is thrown as a <see cref="MicropatchFormatException"/> naming the key path and its position, and no
    /// partial result is ever returned.
    /// </summary>
    public static partial class MicropatchParser
    {
        /// <summary>Superseded ids one patch may list: one install replaces them all under a single freeze.</summary>
        internal const int MaxSupersedes = 16;

        /// <summary>An `at` location (symbol, symbol+0xOFF or 0xRVA) as the format reads it; ArgumentException says what is wrong.</summary>
        public static SiteLocation ParseLocation(string at) => ParseLocation(at, why => new ArgumentException(why));

        private static SiteLocation ParseLocation(string at, Func<string, Exception> error)
        {
            if (at.Length == 0) throw error("'' is neither a symbol nor an offset");
            foreach (char c in at)
                if (char.IsWhiteSpace(c) || char.IsControl(c))
                    throw error("'" + at + "' must not contain spaces; write symbol, symbol+0xOFF or 0xRVA");
            if (at.IndexOf('!') >= 0)
                throw error("'" + at + "': module!symbol names another module and is only allowed in code; `at` is in the target module");

            ulong value;
            if (at[0] >= '0' && at[0] <= '9')
            {
                if (!TryParseNumber(at, out value))
                    throw error("'" + at + "' is not a valid offset (decimal, or hex with 0x) and a symbol cannot start with a digit");
                if (value > MaxOffset) throw error("'" + at + "': offsets within a module fit in 32 bits");
                return new SiteLocation { Offset = value };
            }

            int plus = at.IndexOf('+');
            string symbol = plus < 0 ? at : at.Substring(0, plus);
            if (symbol.Length == 0 || symbol[0] == '-')
                throw error("'" + at + "' is neither a symbol nor an offset");
            value = 0;
            if (plus >= 0 && !TryParseNumber(at.Substring(plus + 1), out value))
                throw error("'" + at + "': the offset after '+' must be a number (decimal, or hex with 0x)");
            if (value > MaxOffset) throw error("'" + at + "': offsets within a module fit in 32 bits");
            return new SiteLocation { Symbol = symbol, Offset = value };
        }

        /// <summary>Key reported for problems that concern the file as a whole rather than one key.</summary>
        internal const string DocumentKey = "(document)";

        /// <summary>Micropatches are a few hundred bytes; the cap keeps a wrong or hostile path from exhausting memory.</summary>
        internal const int MaxFileBytes = 1 << 20;
        /// <summary>Sites per patch: each is recorded in the cave header, which a reader bounds (CaveHeader.MaxHeaderLength).</summary>
        public const int MaxPatchlets = 64;
        /// <summary>Bytes of `expect` (and so of a `replace` span): recorded twice per site in the cave header.</summary>
        public const int MaxExpectBytes = 1024;
        /// <summary>`at` offsets: RVAs are 32-bit, and a larger offset could only wrap an address around.</summary>
        public const ulong MaxOffset = uint.MaxValue;

        private static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);

        public static Micropatch Load(string path)
        {
            var bytes = ReadFile(path, out var fullPath);
            return Parse(bytes, fullPath);
        }

        /// <summary>The exact bytes of a patch file, with the same errors as <see cref="Load"/>; signature checks hash these.</summary>
        internal static byte[] ReadFile(string path, out string fullPath)
        {
            if (path == null) throw new ArgumentNullException(nameof(path));
            byte[] bytes;
            try
            {
                fullPath = Path.GetFullPath(path);
                using (var stream = Modules.ModuleFile.OpenRegular(fullPath))
                {
                    if (stream.Length > MaxFileBytes)
                        throw new MicropatchFormatException(fullPath, DocumentKey, 1, 1, "the file is larger than " + MaxFileBytes + " bytes");
                    bytes = new byte[stream.Length];
                    int read = 0;
                    while (read < bytes.Length)
                    {
                        int n = stream.Read(bytes, read, bytes.Length - read);
                        if (n == 0) throw new IOException("the file shrank while it was being read");
                        read += n;
                    }
                }
            }
            catch (Exception e) when (HotpatchException.ForFile(e, path, "read", HotpatchErrorKind.InvalidPatchFile, HotpatchErrorKind.InvalidPatchFile,
                HotpatchErrorKind.InvalidPatchFile) is HotpatchException problem)
            {
                throw problem;
            }
            return bytes;
        }

        public static Micropatch Parse(byte[] fileBytes, string sourceName)
        {
            if (fileBytes == null) throw new ArgumentNullException(nameof(fileBytes));
            if (sourceName == null) throw new ArgumentNullException(nameof(sourceName));
            if (fileBytes.Length > MaxFileBytes)
                throw new MicropatchFormatException(sourceName, DocumentKey, 1, 1, "the file is larger than " + MaxFileBytes + " bytes");

            byte[] hash;
            using (var sha = SHA256.Create()) hash = sha.ComputeHash(fileBytes);

            string text = Decode(fileBytes, sourceName);
            YamlMappingNode root = LoadRoot(BlankOnlyBlocksEmptied(text), sourceName);
            var patch = new FileReader(sourceName, text).ReadPatch(root);
            patch.FileSha256Bytes = hash;
            patch.FileSha256 = ToHex(hash);
            patch.SourceName = sourceName;
            return patch;
        }

        private static string Decode(byte[] bytes, string source)
        {
            int start = bytes.Length >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF ? 3 : 0;
            try
            {
                return StrictUtf8.GetString(bytes, start, bytes.Length - start);
            }
            catch (DecoderFallbackException e)
            {
                int at = Math.Min(Math.Max(start + e.Index, start), bytes.Length);
                int line = 1, column = 1;
                for (int i = start; i < at; i++)
                {
                    if (bytes[i] == (byte)'\n') { line++; column = 1; }
                    else if ((bytes[i] & 0xC0) != 0x80) column++;
                }
                throw new MicropatchFormatException(source, DocumentKey, line, column, "the file is not valid UTF-8");
            }
        }

        internal static string ToHex(byte[] bytes)
        {
            var sb = new StringBuilder(bytes.Length * 2);
            foreach (var b in bytes) sb.Append(b.ToString("x2", CultureInfo.InvariantCulture));
            return sb.ToString();
        }

        /// <summary>Decimal, or hex with a 0x prefix; no sign, no separators.</summary>
        internal static bool TryParseNumber(string text, out ulong value)
        {
            value = 0;
            if (text.Length > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
            {
                for (int i = 2; i < text.Length; i++)
                {
                    int digit = Hex.Digit(text[i]);
                    if (digit < 0 || value > ulong.MaxValue >> 4) return false;
                    value = value << 4 | (uint)digit;
                }
                return true;
            }
            if (text.Length == 0) return false;
            foreach (char c in text)
            {
                if (c < '0' || c > '9') return false;
                ulong digit = (ulong)(c - '0');
                if (value > (ulong.MaxValue - digit) / 10) return false;
                value = value * 10 + digit;
            }
            return true;
        }
    }
}
