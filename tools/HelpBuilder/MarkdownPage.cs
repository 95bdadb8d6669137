using System.Text.RegularExpressions;

namespace HotpatchTools.HelpBuilder
{
    internal abstract record Block;
    internal sealed record Heading(int Level, string Text) : Block;
    /// <summary>A paragraph, its lines joined by spaces; inline markup is left to the writer.</summary>
    internal sealed record Paragraph(string Text) : Block;
    internal sealed record ListItem(string Marker, string Text) : Block;
    /// <summary>A fenced code block, verbatim.</summary>
    internal sealed record Code(string Language, string Text) : Block;

    internal sealed record Section(string Title, IReadOnlyList<Block> Body);

    /// <summary>
    /// A help page in the Markdown subset platyPS writes: optional YAML front matter, ATX headings,
    /// paragraphs, flat lists and fenced code blocks. Nothing else is needed for help text, and a
    /// small reader keeps the build free of packages.
    /// </summary>
    internal sealed class MarkdownPage
    {
        private static readonly Regex HeadingLine = new(@"^(#{1,6})\s+(.*?)\s*$");
        private static readonly Regex ListLine = new(@"^\s*([-*+]|\d+\.)\s+(.*)$");
        /// <summary>A link: group 1 is its text, group 2 its address.</summary>
        public static readonly Regex Link = new(@"\[([^\]]+)\]\(([^)]*)\)");
        private static readonly Regex CodeSpan = new(@"`([^`]+)`");
        private static readonly Regex StrongSpan = new(@"\*\*(.+?)\*\*");

        private MarkdownPage(string source, IReadOnlyDictionary<string, string> frontMatter, IReadOnlyList<Block> blocks)
        {
            Source = source;
            FrontMatter = frontMatter;
            Blocks = blocks;
        }

        /// <summary>Where the page came from, for error messages.</summary>
        public string Source { get; }
        public IReadOnlyDictionary<string, string> FrontMatter { get; }
        public IReadOnlyList<Block> Blocks { get; }

        public static MarkdownPage Load(string path) => Parse(File.ReadAllText(path), path);

        private static MarkdownPage Parse(string text, string source)
        {
            var lines = text.Replace("\r\n", "\n").Split('\n');
            int i = 0;
            var frontMatter = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            if (lines.Length > 0 && lines[0].Trim() == "---")
            {
                for (i = 1; i < lines.Length && lines[i].Trim() != "---"; i++)
                {
                    int colon = lines[i].IndexOf(':');
                    if (colon > 0) frontMatter[lines[i].Substring(0, colon).Trim()] = lines[i].Substring(colon + 1).Trim();
                }
                if (i == lines.Length) throw new FormatException(source + ": the front matter is not closed by a '---' line.");
                i++;
            }

            var blocks = new List<Block>();
            while (i < lines.Length)
            {
                string line = lines[i];
                if (line.Trim().Length == 0) { i++; continue; }
                string trimmed = line.TrimStart();
                if (trimmed.StartsWith("```", StringComparison.Ordinal))
                {
                    string fence = trimmed.Substring(0, trimmed.Length - trimmed.TrimStart('`').Length);
                    int indent = line.Length - trimmed.Length;
                    var body = new List<string>();
                    for (i++; i < lines.Length && !lines[i].TrimStart().StartsWith(fence, StringComparison.Ordinal); i++)
                        body.Add(Unindent(lines[i], indent));
                    if (i == lines.Length) throw new FormatException(source + ": a code block is not closed.");
                    i++;
                    blocks.Add(new Code(trimmed.Substring(fence.Length).Trim(), string.Join("\n", body).TrimEnd()));
                    continue;
                }
                var heading = HeadingLine.Match(line);
                if (heading.Success)
                {
                    blocks.Add(new Heading(heading.Groups[1].Length, heading.Groups[2].Value));
                    i++;
                    continue;
                }
                var item = ListLine.Match(line);
                var words = new List<string> { (item.Success ? item.Groups[2].Value : line).Trim() };
                // Lines up to a blank line, a new block or a new list item continue this paragraph or item.
                for (i++; i < lines.Length && lines[i].Trim().Length > 0 && !StartsBlock(lines[i]); i++)
                    words.Add(lines[i].Trim());
                string joined = string.Join(" ", words);
                blocks.Add(item.Success ? new ListItem(item.Groups[1].Value, joined) : new Paragraph(joined));
            }
            return new MarkdownPage(source, frontMatter, blocks);
        }

        private static bool StartsBlock(string line) =>
            HeadingLine.IsMatch(line) || ListLine.IsMatch(line) || line.TrimStart().StartsWith("```", StringComparison.Ordinal);

        private static string Unindent(string line, int indent)
        {
            int n = 0;
            while (n < indent && n < line.Length && line[n] == ' ') n++;
            return line.Substring(n);
        }

        /// <summary>Help is read as plain text: links keep their text, code and bold spans lose their marks.</summary>
        public static string Inline(string text) =>
            StrongSpan.Replace(CodeSpan.Replace(Link.Replace(text, "$1"), "$1"), "$1");

        /// <summary>
        /// The blocks under each heading of <paramref name="level"/>, up to the next one. The first
        /// section, titled "", holds what comes before the first such heading.
        /// </summary>
        public static List<Section> Split(IEnumerable<Block> blocks, int level)
        {
            var sections = new List<Section>();
            var body = new List<Block>();
            sections.Add(new Section("", body));
            foreach (var b in blocks)
            {
                if (b is Heading h && h.Level == level)
                    sections.Add(new Section(h.Text, body = new List<Block>()));
                else
                    body.Add(b);
            }
            return sections;
        }
    }
}
