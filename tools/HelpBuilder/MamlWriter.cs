using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace HotpatchTools.HelpBuilder
{
    /// <summary>
    /// Command pages in platyPS's layout to MAML, the XML that Get-Help reads for the cmdlets of a binary
    /// module (from &lt;culture&gt;/&lt;assembly&gt;-Help.xml beside the assembly).
    /// </summary>
    public static class MamlWriter
    {
        public static readonly XNamespace Maml = "http://schemas.microsoft.com/maml/2004/10";
        public static readonly XNamespace Command = "http://schemas.microsoft.com/maml/dev/command/2004/10";
        public static readonly XNamespace Dev = "http://schemas.microsoft.com/maml/dev/2004/10";
        private static readonly XNamespace Msh = "http://msh";

        /// <summary>A parameter named in a syntax line; the lookbehind skips the dash of Verb-Noun.</summary>
        private static readonly Regex SyntaxParameter = new(@"(?<=[\s\[])-(\w+)");

        private static readonly string[] RequiredFields = { "Type", "Required", "Position", "Accept pipeline input", "Accept wildcard characters" };

        /// <summary>One helpItems document with a command:command per page, in the order given.</summary>
        /// <exception cref="FormatException">A page lacks a section, a parameter's description or its fields.</exception>
        public static XDocument Convert(IEnumerable<string> markdownFiles) =>
            new(new XDeclaration("1.0", "utf-8", null),
                new XElement(Msh + "helpItems",
                    new XAttribute("schema", "maml"),
                    // Get-Help matches some nodes by their prefixed names (maml:introduction, ...), so the
                    // prefixes are the conventional ones, declared once here.
                    new XAttribute(XNamespace.Xmlns + "maml", Maml.NamespaceName),
                    new XAttribute(XNamespace.Xmlns + "command", Command.NamespaceName),
                    new XAttribute(XNamespace.Xmlns + "dev", Dev.NamespaceName),
                    markdownFiles.Select(f => CommandElement(MarkdownPage.Load(f))).ToList()));

        private static XElement CommandElement(MarkdownPage page)
        {
            var top = MarkdownPage.Split(page.Blocks, 1);
            if (top.Count != 2) throw Error(page, "a command page has exactly one '# Verb-Noun' heading");
            string name = top[1].Title;
            int dash = name.IndexOf('-');
            if (dash <= 0 || dash == name.Length - 1) throw Error(page, "'" + name + "' is not a Verb-Noun command name");

            var sections = new Dictionary<string, IReadOnlyList<Block>>(StringComparer.OrdinalIgnoreCase);
            foreach (var s in MarkdownPage.Split(top[1].Body, 2).Skip(1))
                if (!sections.TryAdd(s.Title, s.Body)) throw Error(page, "there are two '## " + s.Title + "' sections");
            IReadOnlyList<Block> Required(string title) =>
                sections.TryGetValue(title, out var body) && body.Count > 0 ? body : throw Error(page, "the '## " + title + "' section is missing or empty");
            IReadOnlyList<Block> Optional(string title) => sections.TryGetValue(title, out var body) ? body : Array.Empty<Block>();

            var parameters = Parameters(page, Required("PARAMETERS"));
            return new XElement(Command + "command",
                new XElement(Command + "details",
                    new XElement(Command + "name", name),
                    new XElement(Command + "verb", name.Substring(0, dash)),
                    new XElement(Command + "noun", name.Substring(dash + 1)),
                    Description(Required("SYNOPSIS"))),
                Description(Required("DESCRIPTION")),
                new XElement(Command + "syntax", SyntaxItems(page, name, Required("SYNTAX"), parameters)),
                new XElement(Command + "parameters", parameters.Values),
                new XElement(Command + "inputTypes", TypeEntries(Optional("INPUTS"), Command + "inputType")),
                new XElement(Command + "returnValues", TypeEntries(Optional("OUTPUTS"), Command + "returnValue")),
                new XElement(Maml + "alertSet", new XElement(Maml + "alert", Paras(Optional("NOTES")))),
                new XElement(Command + "examples", Examples(page, Required("EXAMPLES"))),
                new XElement(Command + "relatedLinks", Links(Optional("RELATED LINKS"))));
        }

        /// <summary>The '### -Name' sections, by name, in page order.</summary>
        private static Dictionary<string, XElement> Parameters(MarkdownPage page, IReadOnlyList<Block> body)
        {
            var result = new Dictionary<string, XElement>(StringComparer.OrdinalIgnoreCase);
            foreach (var s in MarkdownPage.Split(body, 3).Skip(1))
            {
                // Get-Help writes its own paragraph about the common parameters.
                if (s.Title == "CommonParameters") continue;
                if (!s.Title.StartsWith("-", StringComparison.Ordinal)) throw Error(page, "'### " + s.Title + "' under PARAMETERS is not '### -Name'");
                string name = s.Title.Substring(1);
                var yaml = s.Body.OfType<Code>().SingleOrDefault(c => c.Language == "yaml")
                    ?? throw Error(page, "-" + name + " has no (single) yaml block of its fields");
                var fields = Fields(yaml.Text);
                foreach (var f in RequiredFields)
                    if (!fields.ContainsKey(f)) throw Error(page, "the yaml block of -" + name + " has no '" + f + ":'");
                var description = s.Body.Where(b => b != yaml).ToList();
                if (description.Count == 0) throw Error(page, "-" + name + " has no description");

                string type = fields["Type"];
                bool many = type.EndsWith("[]", StringComparison.Ordinal);
                string position = fields["Position"];
                string aliases = fields.GetValueOrDefault("Aliases", "");
                var element = new XElement(Command + "parameter",
                    new XAttribute("required", Bool(page, name, fields["Required"])),
                    new XAttribute("variableLength", many ? "true" : "false"),
                    new XAttribute("globbing", Bool(page, name, fields["Accept wildcard characters"])),
                    new XAttribute("pipelineInput", fields["Accept pipeline input"]),
                    new XAttribute("position", position.Equals("Named", StringComparison.OrdinalIgnoreCase) ? "named" : position),
                    new XAttribute("aliases", aliases.Length == 0 ? "none" : aliases),
                    new XElement(Maml + "name", name),
                    Description(description),
                    // A switch takes no value: Get-Help then shows [-Force], not [-Force <SwitchParameter>].
                    type == "SwitchParameter" ? null : new XElement(Command + "parameterValue",
                        new XAttribute("required", "true"), new XAttribute("variableLength", many ? "true" : "false"), type),
                    new XElement(Dev + "type", new XElement(Maml + "name", type), new XElement(Maml + "uri")),
                    new XElement(Dev + "defaultValue", fields.GetValueOrDefault("Default value", "None")));
                if (!result.TryAdd(name, element)) throw Error(page, "-" + name + " is described twice");
            }
            return result;
        }

        private static Dictionary<string, string> Fields(string yaml)
        {
            var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var line in yaml.Split('\n'))
            {
                int colon = line.IndexOf(':');
                if (colon > 0) fields[line.Substring(0, colon).Trim()] = line.Substring(colon + 1).Trim();
            }
            return fields;
        }

        private static string Bool(MarkdownPage page, string parameter, string value) =>
            bool.TryParse(value, out bool b) ? (b ? "true" : "false") : throw Error(page, "-" + parameter + ": '" + value + "' is neither True nor False");

        /// <summary>One syntax item per code block under SYNTAX, with the parameters its line names.</summary>
        private static List<XElement> SyntaxItems(MarkdownPage page, string name, IReadOnlyList<Block> body, Dictionary<string, XElement> parameters)
        {
            var items = new List<XElement>();
            foreach (var code in body.OfType<Code>())
            {
                if (!code.Text.StartsWith(name, StringComparison.OrdinalIgnoreCase)) throw Error(page, "a syntax line does not start with " + name);
                var item = new XElement(Command + "syntaxItem", new XElement(Maml + "name", name));
                foreach (Match m in SyntaxParameter.Matches(code.Text))
                    item.Add(new XElement(parameters.TryGetValue(m.Groups[1].Value, out var p) ? p
                        : throw Error(page, "the syntax names -" + m.Groups[1].Value + ", which has no '### -" + m.Groups[1].Value + "' section")));
                items.Add(item);
            }
            if (items.Count == 0) throw Error(page, "SYNTAX has no code block");
            return items;
        }

        private static List<XElement> Examples(MarkdownPage page, IReadOnlyList<Block> body)
        {
            var examples = new List<XElement>();
            foreach (var e in MarkdownPage.Split(body, 3).Skip(1))
            {
                // Only the PowerShell blocks are the example's code (what a reader copies and runs); a plain block is
                // sample output and goes to the remarks, where it is shown as it is and never mistaken for a command.
                bool IsCommand(Block b) => b is Code c && c.Language == "powershell";
                var code = e.Body.Where(IsCommand).Cast<Code>().Select(c => c.Text).ToList();
                if (code.Count == 0) throw Error(page, "example '" + e.Title + "' has no powershell code block");
                examples.Add(new XElement(Command + "example",
                    // Get-Help prints the title as it is; the rule of dashes is how every MAML file sets it apart.
                    new XElement(Maml + "title", "-------------------------- " + e.Title + " --------------------------"),
                    new XElement(Dev + "code", string.Join("\n\n", code)),
                    new XElement(Dev + "remarks", Paras(e.Body.Where(b => !IsCommand(b))))));
            }
            if (examples.Count == 0) throw Error(page, "EXAMPLES has no '### Example' section");
            return examples;
        }

        private static IEnumerable<XElement> TypeEntries(IReadOnlyList<Block> body, XName entry) =>
            MarkdownPage.Split(body, 3).Skip(1).Select(s => new XElement(entry,
                new XElement(Dev + "type", new XElement(Maml + "name", s.Title), new XElement(Maml + "uri")),
                Description(s.Body)));

        private static IEnumerable<XElement> Links(IReadOnlyList<Block> body) =>
            body.SelectMany(b => b switch
                {
                    Paragraph p => MarkdownPage.Link.Matches(p.Text),
                    ListItem li => MarkdownPage.Link.Matches(li.Text),
                    _ => Enumerable.Empty<Match>(),
                })
                .Select(m => new XElement(Maml + "navigationLink",
                    new XElement(Maml + "linkText", m.Groups[1].Value),
                    // A link to a sibling page means nothing outside the docs folder; Get-Help -Online needs a web address.
                    new XElement(Maml + "uri", IsWebAddress(m.Groups[2].Value) ? m.Groups[2].Value : "")));

        private static bool IsWebAddress(string s) =>
            Uri.TryCreate(s, UriKind.Absolute, out var u) && (u.Scheme == Uri.UriSchemeHttp || u.Scheme == Uri.UriSchemeHttps);

        private static XElement Description(IEnumerable<Block> blocks) => new(Maml + "description", Paras(blocks));

        /// <summary>
        /// A maml:para per block. Get-Help keeps the line breaks inside a para and sets paras apart by a
        /// blank line, so the items of one list share a para, one line each.
        /// </summary>
        private static List<XElement> Paras(IEnumerable<Block> blocks)
        {
            var paras = new List<XElement>();
            var list = new List<string>();
            void EndList()
            {
                if (list.Count == 0) return;
                paras.Add(new XElement(Maml + "para", string.Join("\n", list)));
                list.Clear();
            }
            foreach (var b in blocks)
            {
                if (b is ListItem item)
                {
                    list.Add(item.Marker + " " + MarkdownPage.Inline(item.Text));
                    continue;
                }
                EndList();
                paras.Add(new XElement(Maml + "para", b switch
                {
                    Paragraph p => MarkdownPage.Inline(p.Text),
                    Heading h => MarkdownPage.Inline(h.Text),
                    Code c => c.Text,
                    _ => throw new InvalidOperationException("unknown block " + b.GetType().Name),
                }));
            }
            EndList();
            return paras;
        }

        private static FormatException Error(MarkdownPage page, string message) => new(page.Source + ": " + message + ".");
    }
}
