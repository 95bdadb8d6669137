using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Security;
using System.Security.Cryptography;
using System.Text;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace HotpatchTools.Engine.Format
{
    internal sealed class MicropatchFormatException : HotpatchException
    {
        public MicropatchFormatException(string source, string key, int line, int column, string message)
            : base(HotpatchErrorKind.InvalidPatchFile, source + ": line " + line + ", column " + column + ": " + key + ": " + message)
        {
            Source = source; Key = key; Line = line; Column = column;
        }
        public new string Source { get; }
        /// <summary>The key path, e.g. "patchlets[0].expect".</summary>
        public string Key { get; }
        public int Line { get; }
        public int Column { get; }
    }

    /// <summary>
    /// Reads micropatch files (format 1) strictly: the first problem found
    /// is thrown as a <see cref="MicropatchFormatException"/> naming the key path and its position, and no
    /// partial result is ever returned.
    /// </summary>
    public static class MicropatchParser
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

        /// <summary>
        /// The format nests three levels deep. YamlDotNet's representation model recurses once per level and a
        /// stack overflow cannot be caught, so deeper input is refused before the model is built.
        /// </summary>
        private const int MaxDepth = 16;

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
                using (var stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read))
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
            catch (Exception e) when (e is FileNotFoundException || e is DirectoryNotFoundException)
            {
                throw new HotpatchException(HotpatchErrorKind.InvalidPatchFile, path + ": file not found", e);
            }
            catch (Exception e) when (e is UnauthorizedAccessException || e is SecurityException)
            {
                throw new HotpatchException(HotpatchErrorKind.InvalidPatchFile, path + ": access denied", e);
            }
            catch (Exception e) when (e is IOException || e is ArgumentException || e is NotSupportedException)
            {
                throw new HotpatchException(HotpatchErrorKind.InvalidPatchFile, path + ": cannot read the file: " + e.Message, e);
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

        /// <summary>
        /// A block scalar holding only blank lines (`code: |` then whitespace) is valid YAML, an empty string, but
        /// YamlDotNet refuses one whose first blank line has more spaces than it expects ("found extra spaces in first
        /// line"). Such lines are made empty here, line for line, so positions in later errors stay right. Lines of
        /// any block with content are left as they are.
        /// </summary>
        internal static string BlankOnlyBlocksEmptied(string text)
        {
            var lines = text.Split('\n');
            bool changed = false;
            for (int i = 0; i < lines.Length; i++)
            {
                string header = lines[i].TrimEnd('\r');
                int hash = header.IndexOf(" #", StringComparison.Ordinal);
                string code = (hash >= 0 ? header.Substring(0, hash) : header).TrimEnd();
                int indicator = code.LastIndexOf(": ", StringComparison.Ordinal);
                if (indicator < 0) continue;
                string tail = code.Substring(indicator + 2).Trim();
                if (tail.Length == 0 || (tail[0] != '|' && tail[0] != '>') || tail.Substring(1).TrimStart('-', '+', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9').Length != 0) continue;
                int j = i + 1;
                while (j < lines.Length && lines[j].Trim(' ', '\t', '\r').Length == 0) j++;
                // Content follows if the next non-blank line is indented deeper than the key's line.
                int keyIndent = 0;
                while (keyIndent < header.Length && (header[keyIndent] == ' ' || header[keyIndent] == '-')) keyIndent++;
                int nextIndent = 0;
                if (j < lines.Length) while (nextIndent < lines[j].Length && lines[j][nextIndent] == ' ') nextIndent++;
                if (j < lines.Length && nextIndent >= keyIndent) continue;
                for (int k = i + 1; k < j; k++)
                    if (lines[k].Trim('\r').Length > 0) { lines[k] = lines[k].EndsWith("\r", StringComparison.Ordinal) ? "\r" : ""; changed = true; }
                i = j - 1;
            }
            return changed ? string.Join("\n", lines) : text;
        }

        private static YamlMappingNode LoadRoot(string text, string source)
        {
            var scanner = new Scanner(new StringReader(text));
            YamlStream stream;
            try
            {
                var events = CheckStructure(new Parser(scanner), source);
                stream = new YamlStream();
                stream.Load(new EventReplay(events));
            }
            catch (YamlException e)
            {
                // YamlDotNet's Start is where the construct began and End where the problem was found; on one line
                // Start is the better column, across lines End is the right line (a tab three lines down, say).
                if (e.End.Line > e.Start.Line)
                    throw Fail(source, DocumentKey, e.End, "invalid YAML: " + e.Message
                        + " (in what begins at line " + e.Start.Line + ", column " + e.Start.Column + ")");
                throw Fail(source, DocumentKey, e.Start, "invalid YAML: " + e.Message);
            }
            catch (Exception e) when (!(e is MicropatchFormatException) && !(e is OutOfMemoryException))
            {
                // YamlDotNet reports some syntax errors (an unclosed flow sequence, for one) as
                // InvalidOperationException; callers are promised a format error for any bad input.
                throw Fail(source, DocumentKey, scanner.CurrentPosition,
                    "invalid YAML: the parser gave up here (" + e.Message + ")");
            }

            if (stream.Documents.Count == 0)
                throw new MicropatchFormatException(source, DocumentKey, 1, 1, "the file is empty");
            var rootNode = stream.Documents[0].RootNode;
            if (rootNode is YamlMappingNode mapping) return mapping;
            if (IsNull(rootNode))
                throw new MicropatchFormatException(source, DocumentKey, 1, 1, "the file is empty");
            throw Fail(source, DocumentKey, rootNode.Start,
                "the top level must be a mapping of keys, found " + Describe(rootNode));
        }

        private sealed class Frame
        {
            public Frame(string path, bool isMapping) { Path = path; IsMapping = isMapping; }
            public string Path { get; }
            public bool IsMapping { get; }
            public Dictionary<string, Mark> Keys { get; } = new Dictionary<string, Mark>(StringComparer.Ordinal);
            public bool ExpectKey { get; set; } = true;
            public string Key { get; set; } = "";
            public int Index { get; set; }
        }

        /// <summary>
        /// Walks the raw event stream once, before the representation model sees it, for what the model either
        /// cannot report with a key path (duplicate keys) or must not see (deep nesting, several documents).
        /// Anchors, aliases and tags are refused: a micropatch needs none, and an alias would make every
        /// position reported inside it point at the anchor instead.
        /// </summary>
        private static List<ParsingEvent> CheckStructure(IParser parser, string source)
        {
            var events = new List<ParsingEvent>();
            var frames = new Stack<Frame>();
            int documents = 0;
            while (parser.MoveNext())
            {
                var ev = parser.Current!;
                events.Add(ev);
                switch (ev)
                {
                    case DocumentStart _:
                        if (++documents > 1)
                            throw Fail(source, DocumentKey, ev.Start,
                                "a micropatch file holds exactly one YAML document");
                        break;
                    case AnchorAlias alias:
                        throw Fail(source, NodePath(frames, alias, source), ev.Start,
                            "YAML aliases are not allowed in a micropatch file");
                    case NodeEvent node:
                        string path = NodePath(frames, node, source);
                        if (!node.Anchor.IsEmpty)
                            throw Fail(source, path, ev.Start,
                                "YAML anchors are not allowed in a micropatch file");
                        if (!node.Tag.IsEmpty)
                            throw Fail(source, path, ev.Start,
                                "YAML tags are not allowed in a micropatch file");
                        if (node is MappingStart || node is SequenceStart)
                        {
                            if (frames.Count >= MaxDepth)
                                throw Fail(source, path, ev.Start,
                                    "nesting is too deep");
                            frames.Push(new Frame(path, node is MappingStart));
                        }
                        break;
                    case MappingEnd _:
                    case SequenceEnd _:
                        frames.Pop();
                        break;
                }
            }
            return events;
        }

        /// <summary>The key path of the node that <paramref name="ev"/> starts; records keys and refuses duplicates.</summary>
        private static string NodePath(Stack<Frame> frames, ParsingEvent ev, string source)
        {
            if (frames.Count == 0) return "";
            var frame = frames.Peek();
            if (!frame.IsMapping)
                return frame.Path + "[" + frame.Index++ + "]";
            if (!frame.ExpectKey)
            {
                frame.ExpectKey = true;
                return Join(frame.Path, frame.Key);
            }

            frame.ExpectKey = false;
            if (!(ev is Scalar key) || key.Style == ScalarStyle.Plain && IsNullText(key.Value))
                throw Fail(source, frame.Path == "" ? DocumentKey : frame.Path, ev.Start,
                    "a key must be a plain name");
            if (frame.Keys.TryGetValue(key.Value, out var first))
                throw Fail(source, Join(frame.Path, key.Value), ev.Start,
                    "duplicate key (first given on line " + first.Line + ")");
            frame.Keys.Add(key.Value, ev.Start);
            frame.Key = key.Value;
            return Join(frame.Path, key.Value);
        }

        private static MicropatchFormatException Fail(string source, string key, Mark at, string message) =>
            new MicropatchFormatException(source, key, Clamp(at.Line), Clamp(at.Column), message);

        private static int Clamp(long position) => (int)Math.Min(Math.Max(position, 1), int.MaxValue);

        internal static string Join(string path, string key) => path.Length == 0 ? key : path + "." + key;

        /// <summary>Feeds already-checked events to YamlStream so the text is scanned only once.</summary>
        private sealed class EventReplay : IParser
        {
            private readonly List<ParsingEvent> events;
            private int next;
            public EventReplay(List<ParsingEvent> events) { this.events = events; }
            public ParsingEvent? Current { get; private set; }
            public bool MoveNext()
            {
                if (next >= events.Count) { Current = null; return false; }
                Current = events[next++];
                return true;
            }
        }

        private static bool IsNullText(string value) =>
            value.Length == 0 || value == "~" || value == "null" || value == "Null" || value == "NULL";

        internal static bool IsNull(YamlNode node) =>
            node is YamlScalarNode s && s.Style == ScalarStyle.Plain && IsNullText(s.Value ?? "");

        internal static string Describe(YamlNode node)
        {
            switch (node)
            {
                case YamlMappingNode _: return "a mapping";
                case YamlSequenceNode _: return "a list";
                default: return IsNull(node) ? "no value" : "a scalar";
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
                    int digit = HexDigit(text[i]);
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

        internal static int HexDigit(char c)
        {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        }

        /// <summary>The schema walk over one checked document.</summary>
        private sealed class FileReader
        {
            private static readonly string[] RootKeys = { "format", "id", "title", "description", "references", "severity", "supersedes", "target", "patchlets" };
            private static readonly string[] TargetKeys = { "os", "arch", "module", "identity" };
            private static readonly string[] IdentityKeys = { "buildId", "timeDateStamp", "sizeOfImage", "sha256" };
            private static readonly string[] PatchletKeys = { "at", "expect", "function", "mode", "code" };
            private static readonly string[] FunctionKeys = { "start", "end" };

            private readonly string source;
            private readonly string text;
            private string[]? lines;

            public FileReader(string source, string text)
            {
                this.source = source;
                this.text = text;
            }

            private MicropatchFormatException Error(string key, YamlNode at, string message) =>
                Fail(source, key, at.Start, message);

            public Micropatch ReadPatch(YamlMappingNode root)
            {
                var keys = Fields(root, "", RootKeys);
                var patch = new Micropatch();

                var format = Required(keys, root, "", "format");
                ulong formatValue = Integer(format, "format");
                if (formatValue != 1)
                    throw Error("format", format, "unsupported format " + formatValue + "; this engine reads format 1");
                patch.Format = 1;

                var id = Required(keys, root, "", "id");
                patch.Id = Text(id, "id");
                if (!IsValidId(patch.Id))
                    throw Error("id", id, "'" + patch.Id + "' is not a valid id: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit");

                var title = Required(keys, root, "", "title");
                patch.Title = Text(title, "title");
                if (patch.Title.Trim().Length == 0) throw Error("title", title, "the title must not be empty");

                if (keys.TryGetValue("description", out var description))
                    patch.Description = Text(description, "description");

                if (keys.TryGetValue("references", out var references))
                {
                    var list = new List<string>();
                    int i = 0;
                    foreach (var item in Sequence(references, "references").Children)
                    {
                        string path = "references[" + i++ + "]";
                        string reference = Text(item, path);
                        if (reference.Trim().Length == 0) throw Error(path, item, "a reference must not be empty");
                        list.Add(reference);
                    }
                    patch.References = list.ToArray();
                }

                if (keys.TryGetValue("severity", out var severity))
                    patch.Severity = Choice(severity, "severity", new[] { "low", "medium", "high", "critical" },
                        new[] { Severity.Low, Severity.Medium, Severity.High, Severity.Critical });

                if (keys.TryGetValue("supersedes", out var supersedes))
                {
                    var ids = new List<string>();
                    int i = 0;
                    foreach (var item in Sequence(supersedes, "supersedes").Children)
                    {
                        string path = "supersedes[" + i++ + "]";
                        string old = Text(item, path);
                        if (!IsValidId(old)) throw Error(path, item, "'" + old + "' is not a valid patch id");
                        if (string.Equals(old, patch.Id, StringComparison.OrdinalIgnoreCase)) throw Error(path, item, "a patch cannot supersede itself");
                        if (ids.Exists(x => string.Equals(x, old, StringComparison.OrdinalIgnoreCase))) throw Error(path, item, "'" + old + "' is listed twice");
                        // One replacement touches every cave it names under one freeze: keep that bounded.
                        if (ids.Count == MaxSupersedes) throw Error(path, item, "at most " + MaxSupersedes + " superseded patches");
                        ids.Add(old);
                    }
                    patch.Supersedes = ids.ToArray();
                }

                patch.Target = ReadTarget(Mapping(Required(keys, root, "", "target"), "target"));

                var patchlets = Sequence(Required(keys, root, "", "patchlets"), "patchlets");
                if (patchlets.Children.Count == 0)
                    throw Error("patchlets", patchlets, "at least one patchlet is required");
                if (patchlets.Children.Count > MaxPatchlets)
                    throw Error("patchlets", patchlets, "at most " + MaxPatchlets + " patchlets are allowed (the cave header records each site)");
                var result = new List<Patchlet>();
                for (int i = 0; i < patchlets.Children.Count; i++)
                    result.Add(ReadPatchlet(Mapping(patchlets.Children[i], "patchlets[" + i + "]"), i));
                patch.Patchlets = result.ToArray();
                return patch;
            }

            private MicropatchTarget ReadTarget(YamlMappingNode node)
            {
                var keys = Fields(node, "target", TargetKeys);
                var target = new MicropatchTarget
                {
                    Os = Choice(Required(keys, node, "target", "os"), "target.os", new[] { "windows", "linux" },
                        new[] { TargetOs.Windows, TargetOs.Linux }),
                    Arch = Choice(Required(keys, node, "target", "arch"), "target.arch", new[] { "x64", "x86" },
                        new[] { TargetArch.X64, TargetArch.X86 }),
                };

                var module = Required(keys, node, "target", "module");
                target.Module = Text(module, "target.module");
                if (target.Module.Trim().Length == 0) throw Error("target.module", module, "the module name must not be empty");
                if (Encoding.UTF8.GetByteCount(target.Module) > 255) throw Error("target.module", module, "a file name is at most 255 bytes");
                if (target.Module.IndexOf('/') >= 0 || target.Module.IndexOf('\\') >= 0)
                    throw Error("target.module", module, "the module is a file name, not a path");

                if (keys.TryGetValue("identity", out var identity))
                    target.Identity = ReadIdentity(Mapping(identity, "target.identity"));
                return target;
            }

            private ModuleIdentity ReadIdentity(YamlMappingNode node)
            {
                const string path = "target.identity";
                var keys = Fields(node, path, IdentityKeys);
                var identity = new ModuleIdentity();

                if (keys.TryGetValue("buildId", out var buildId))
                    identity.BuildId = ToHex(HexBytes(buildId, path + ".buildId"));
                if (keys.TryGetValue("timeDateStamp", out var stamp))
                    identity.TimeDateStamp = UInt32(stamp, path + ".timeDateStamp");
                if (keys.TryGetValue("sizeOfImage", out var size))
                    identity.SizeOfImage = UInt32(size, path + ".sizeOfImage");
                if (keys.TryGetValue("sha256", out var sha))
                {
                    var bytes = HexBytes(sha, path + ".sha256");
                    if (bytes.Length != 32) throw Error(path + ".sha256", sha, "a SHA-256 is 32 bytes (64 hex digits), found " + bytes.Length);
                    identity.Sha256 = ToHex(bytes);
                }
                return identity;
            }

            private Patchlet ReadPatchlet(YamlMappingNode node, int index)
            {
                string path = "patchlets[" + index + "]";
                var keys = Fields(node, path, PatchletKeys);
                var patchlet = new Patchlet { Index = index, Line = Clamp(node.Start.Line) };

                var at = Required(keys, node, path, "at");
                patchlet.At = Text(at, path + ".at");
                patchlet.Location = ParseLocation(at, patchlet.At, path + ".at");

                var expect = Required(keys, node, path, "expect");
                patchlet.Expect = HexBytes(expect, path + ".expect");
                // What is overwritten is recorded in the target's cave header; refuse here what could not be recorded there.
                if (patchlet.Expect.Length > MaxExpectBytes)
                    throw Error(path + ".expect", expect, "at most " + MaxExpectBytes + " bytes are allowed, found " + patchlet.Expect.Length);

                if (keys.TryGetValue("function", out var function))
                    patchlet.Function = ReadFunction(function, path + ".function");

                patchlet.Mode = keys.TryGetValue("mode", out var mode)
                    ? Choice(mode, path + ".mode", new[] { "insert", "replace" }, new[] { PatchMode.Insert, PatchMode.Replace })
                    : PatchMode.Insert;

                if (keys.TryGetValue("code", out var code))
                {
                    patchlet.Code = Text(code, path + ".code");
                    SetCodePosition(patchlet, (YamlScalarNode)code, node);
                }
                else
                {
                    patchlet.CodeLine = Clamp(node.Start.Line);
                    patchlet.CodeColumn = Clamp(node.Start.Column);
                }
                return patchlet;
            }

            /// <summary>`function: symbol` (a symbol with a size) or `function: { start: location, end: location }`.</summary>
            private DeclaredFunction ReadFunction(YamlNode node, string path)
            {
                if (node is YamlMappingNode map)
                {
                    var keys = Fields(map, path, FunctionKeys);
                    var start = Required(keys, map, path, "start");
                    var end = Required(keys, map, path, "end");
                    return new DeclaredFunction
                    {
                        Start = ParseLocation(start, Text(start, path + ".start"), path + ".start"),
                        End = ParseLocation(end, Text(end, path + ".end"), path + ".end"),
                    };
                }
                string text = Text(node, path);
                var symbol = ParseLocation(node, text, path);
                if (symbol.Symbol == null || symbol.Offset != 0)
                    throw Error(path, node, "'" + text + "': write a symbol that has a size, or { start: <location>, end: <location> }");
                return new DeclaredFunction { Symbol = symbol.Symbol };
            }

            private SiteLocation ParseLocation(YamlNode node, string at, string key) =>
                MicropatchParser.ParseLocation(at, why => Error(key, node, why));

            /// <summary>
            /// Points CodeLine/CodeColumn at the first character of the code text so that the assembler can report
            /// errors at file positions.
            /// </summary>
            private void SetCodePosition(Patchlet patchlet, YamlScalarNode code, YamlMappingNode parent)
            {
                switch (code.Style)
                {
                    case ScalarStyle.Literal:
                    case ScalarStyle.Folded:
                        patchlet.CodeLine = Clamp(code.Start.Line) + 1;
                        patchlet.CodeColumn = BlockIndentation(code, parent) + 1;
                        break;
                    case ScalarStyle.SingleQuoted:
                    case ScalarStyle.DoubleQuoted:
                        patchlet.CodeLine = Clamp(code.Start.Line);
                        patchlet.CodeColumn = Clamp(code.Start.Column) + 1;
                        break;
                    default:
                        patchlet.CodeLine = Clamp(code.Start.Line);
                        patchlet.CodeColumn = Clamp(code.Start.Column);
                        break;
                }
            }

            /// <summary>The indentation of a block scalar's content: explicit in its header, else that of its first non-blank line.</summary>
            private int BlockIndentation(YamlScalarNode code, YamlMappingNode parent)
            {
                int parentIndent = Clamp(parent.Start.Column) - 1;
                for (int i = (int)code.Start.Index + 1; i < text.Length && text[i] != '\n' && text[i] != '\r' && text[i] != ' ' && text[i] != '#'; i++)
                    if (text[i] >= '1' && text[i] <= '9') return parentIndent + (text[i] - '0');

                lines ??= text.Split('\n');
                for (int line = Clamp(code.Start.Line); line < lines.Length; line++)
                {
                    string content = lines[line].TrimEnd('\r');
                    int spaces = 0;
                    while (spaces < content.Length && content[spaces] == ' ') spaces++;
                    if (spaces < content.Length) return spaces;
                }
                return parentIndent + 1;
            }

            private Dictionary<string, YamlNode> Fields(YamlMappingNode node, string path, string[] known)
            {
                var fields = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
                foreach (var entry in node.Children)
                {
                    // CheckStructure has already refused keys that are not scalars, and duplicates.
                    string name = ((YamlScalarNode)entry.Key).Value ?? "";
                    if (Array.IndexOf(known, name) < 0)
                        throw Error(Join(path, name), entry.Key, "unknown key; expected one of: " + string.Join(", ", known));
                    fields.Add(name, entry.Value);
                }
                return fields;
            }

            private YamlNode Required(Dictionary<string, YamlNode> fields, YamlMappingNode node, string path, string name)
            {
                if (fields.TryGetValue(name, out var value)) return value;
                throw Error(Join(path, name), node, "required key is missing");
            }

            private YamlMappingNode Mapping(YamlNode node, string key) =>
                node as YamlMappingNode ?? throw Error(key, node, "expected a mapping, found " + Describe(node));

            private YamlSequenceNode Sequence(YamlNode node, string key) =>
                node as YamlSequenceNode ?? throw Error(key, node, "expected a list, found " + Describe(node));

            private string Text(YamlNode node, string key)
            {
                if (node is YamlScalarNode scalar && !IsNull(node)) return scalar.Value ?? "";
                throw Error(key, node, "expected a string, found " + Describe(node));
            }

            /// <summary>Numbers are plain scalars: a quoted "1" is a string to YAML, and the format is strict about types.</summary>
            private ulong Integer(YamlNode node, string key)
            {
                string value = Text(node, key);
                if (((YamlScalarNode)node).Style != ScalarStyle.Plain)
                    throw Error(key, node, "expected an integer, found a quoted string");
                if (!TryParseNumber(value, out ulong result))
                    throw Error(key, node, "expected an integer (decimal, or hex with 0x), found '" + value + "'");
                return result;
            }

            private uint UInt32(YamlNode node, string key)
            {
                ulong value = Integer(node, key);
                if (value > uint.MaxValue) throw Error(key, node, "the value does not fit in 32 bits");
                return (uint)value;
            }

            private T Choice<T>(YamlNode node, string key, string[] names, T[] values)
            {
                string value = Text(node, key);
                int i = Array.IndexOf(names, value);
                if (i < 0) throw Error(key, node, "'" + value + "' is not valid; expected one of: " + string.Join(", ", names));
                return values[i];
            }

            /// <summary>Pairs of hex digits; whitespace may separate pairs but not split one.</summary>
            private byte[] HexBytes(YamlNode node, string key)
            {
                string value = Text(node, key);
                var bytes = new List<byte>();
                foreach (var group in value.Split(new[] { ' ', '\t', '\n', '\r' }, StringSplitOptions.RemoveEmptyEntries))
                {
                    if (group.Length % 2 != 0)
                        throw Error(key, node, "'" + group + "' has an odd number of hex digits; bytes are pairs of hex digits");
                    for (int i = 0; i < group.Length; i += 2)
                    {
                        int high = HexDigit(group[i]), low = HexDigit(group[i + 1]);
                        if (high < 0 || low < 0)
                            throw Error(key, node, "'" + group + "' is not hex; bytes are pairs of hex digits like 8b 47 08");
                        bytes.Add((byte)(high << 4 | low));
                    }
                }
                if (bytes.Count == 0) throw Error(key, node, "at least one byte is required");
                return bytes.ToArray();
            }

            private static bool IsValidId(string id)
            {
                if (id.Length < 1 || id.Length > 64) return false;
                for (int i = 0; i < id.Length; i++)
                {
                    char c = id[i];
                    bool alphanumeric = c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9';
                    if (!alphanumeric && (i == 0 || c != '.' && c != '_' && c != '-')) return false;
                }
                return true;
            }
        }
    }
}
