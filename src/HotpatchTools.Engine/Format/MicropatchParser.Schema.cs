using System.Text;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace HotpatchTools.Engine.Format
{
    // The schema reader: the format's keys and values, read from a document the structure check passed.
    public static partial class MicropatchParser
    {
        /// <summary>The schema walk over one checked document.</summary>
        private sealed class FileReader
        {
            private static readonly string[] RootKeys = { "format", "id", "title", "description", "references", "severity", "supersedes", "target", "patchlets" };
            private static readonly string[] TargetKeys = { "os", "arch", "module", "identity" };
            private static readonly string[] IdentityKeys = { "buildId", "timeDateStamp", "sizeOfImage", "sha256" };
            private static readonly string[] PatchletKeys = { "at", "expect", "function", "mode", "code" };
            private static readonly string[] FunctionKeys = { "start", "end" };

            private readonly string _source;
            private readonly string _text;
            private string[]? _lines;

            public FileReader(string source, string text)
            {
                _source = source;
                _text = text;
            }

            private MicropatchFormatException Error(string key, YamlNode at, string message) =>
                Fail(_source, key, at.Start, message);

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
                    patch.References = Texts(references, "references",
                        (reference, _) => reference.Trim().Length == 0 ? "a reference must not be empty" : null);

                if (keys.TryGetValue("severity", out var severity))
                    patch.Severity = Choice(severity, "severity", new[] { "low", "medium", "high", "critical" },
                        new[] { Severity.Low, Severity.Medium, Severity.High, Severity.Critical });

                if (keys.TryGetValue("supersedes", out var supersedes))
                    patch.Supersedes = Texts(supersedes, "supersedes", (old, ids) =>
                        !IsValidId(old) ? "'" + old + "' is not a valid patch id"
                        : string.Equals(old, patch.Id, StringComparison.OrdinalIgnoreCase) ? "a patch cannot supersede itself"
                        : ids.Exists(x => string.Equals(x, old, StringComparison.OrdinalIgnoreCase)) ? "'" + old + "' is listed twice"
                        // One replacement touches every cave it names under one freeze: keep that bounded.
                        : ids.Count == MaxSupersedes ? "at most " + MaxSupersedes + " superseded patches"
                        : null);

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
                    Os = Choice(Required(keys, node, "target", "os"), "target.os", new[] { TargetOs.Windows.FileName(), TargetOs.Linux.FileName() },
                        new[] { TargetOs.Windows, TargetOs.Linux }),
                    Arch = Choice(Required(keys, node, "target", "arch"), "target.arch", new[] { TargetArch.X64.FileName(), TargetArch.X86.FileName() },
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
                for (int i = (int)code.Start.Index + 1; i < _text.Length && _text[i] != '\n' && _text[i] != '\r' && _text[i] != ' ' && _text[i] != '#'; i++)
                    if (_text[i] >= '1' && _text[i] <= '9') return parentIndent + (_text[i] - '0');

                _lines ??= _text.Split('\n');
                for (int line = Clamp(code.Start.Line); line < _lines.Length; line++)
                {
                    string content = _lines[line].TrimEnd('\r');
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

            /// <summary>A list of strings, each refused with the reason <paramref name="problem"/> gives (seeing the items before it), if it gives one.</summary>
            private string[] Texts(YamlNode node, string key, Func<string, List<string>, string?> problem)
            {
                var list = new List<string>();
                int i = 0;
                foreach (var item in Sequence(node, key).Children)
                {
                    string path = key + "[" + i++ + "]";
                    string text = Text(item, path);
                    if (problem(text, list) is { } reason) throw Error(path, item, reason);
                    list.Add(text);
                }
                return list.ToArray();
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
                        int high = Hex.Digit(group[i]), low = Hex.Digit(group[i + 1]);
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
