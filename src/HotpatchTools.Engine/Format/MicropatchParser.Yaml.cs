using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace HotpatchTools.Engine.Format
{
    // The YAML structure check: text to a checked mapping, before the schema reader sees it.
    public static partial class MicropatchParser
    {
        /// <summary>
        /// The format nests three levels deep. YamlDotNet's representation model recurses once per level and a
        /// stack overflow cannot be caught, so deeper input is refused before the model is built.
        /// </summary>
        private const int MaxDepth = 16;

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
            private readonly List<ParsingEvent> _events;
            private int _next;
            public EventReplay(List<ParsingEvent> events) { _events = events; }
            public ParsingEvent? Current { get; private set; }
            public bool MoveNext()
            {
                if (_next >= _events.Count) { Current = null; return false; }
                Current = _events[_next++];
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
    }
}
