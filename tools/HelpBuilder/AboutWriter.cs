using System.Text;

namespace HotpatchTools.HelpBuilder
{
    /// <summary>
    /// An about_ page to the plain text Get-Help shows for about_ topics: section headings in capitals at
    /// the margin, text indented and wrapped to a console's 80 columns, code indented further.
    /// </summary>
    public static class AboutWriter
    {
        private const int Width = 80;
        private const string Indent = "    ";
        private const string SubheadingIndent = "  ";

        /// <exception cref="FormatException">The page does not start with '# about_Name' matching its file name.</exception>
        public static string Convert(string markdownFile)
        {
            var page = MarkdownPage.Load(markdownFile);
            string topic = Path.GetFileNameWithoutExtension(markdownFile);
            if (page.Blocks.FirstOrDefault() is not Heading { Level: 1 } title || !title.Text.Equals(topic, StringComparison.OrdinalIgnoreCase))
                throw new FormatException(markdownFile + ": an about page starts with '# " + topic + "'.");

            var text = new StringBuilder();
            Block? previous = null;
            foreach (var b in page.Blocks)
            {
                // Text follows its heading on the next line (Get-Help takes a topic's synopsis from the line
                // after SHORT DESCRIPTION), and items of one list follow each other; other blocks are set apart.
                if (previous != null && previous is not Heading { Level: > 1 } && !(b is ListItem && previous is ListItem)) text.AppendLine();
                switch (b)
                {
                    case Heading { Level: 1 } h:
                        // The layout of PowerShell's own about_*.help.txt files, which readers know.
                        text.AppendLine("TOPIC").AppendLine(Indent + h.Text);
                        break;
                    case Heading { Level: 2 } h:
                        text.AppendLine(MarkdownPage.Inline(h.Text).ToUpperInvariant());
                        break;
                    case Heading h:
                        // Between the margin of the sections and the indent of the text, so that it stands out.
                        text.AppendLine(SubheadingIndent + MarkdownPage.Inline(h.Text));
                        break;
                    case Paragraph p:
                        Wrap(text, MarkdownPage.Inline(p.Text), Indent, Indent);
                        break;
                    case ListItem item:
                        Wrap(text, MarkdownPage.Inline(item.Text), Indent + item.Marker + " ", Indent + new string(' ', item.Marker.Length + 1));
                        break;
                    case Code c:
                        foreach (var line in c.Text.Split('\n')) text.AppendLine((Indent + Indent + line).TrimEnd());
                        break;
                }
                previous = b;
            }
            return text.ToString();
        }

        private static void Wrap(StringBuilder text, string words, string firstIndent, string restIndent)
        {
            var line = new StringBuilder(firstIndent);
            bool empty = true;
            foreach (var word in words.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                if (!empty && line.Length + 1 + word.Length > Width)
                {
                    text.AppendLine(line.ToString());
                    line.Clear().Append(restIndent);
                    empty = true;
                }
                if (!empty) line.Append(' ');
                line.Append(word);
                empty = false;
            }
            text.AppendLine(line.ToString());
        }
    }
}
