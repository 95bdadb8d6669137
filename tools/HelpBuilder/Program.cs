using HotpatchTools.HelpBuilder;

// HelpBuilder <docs dir> <output dir>: each command page (front matter names its "external help file")
// goes into that MAML file, each about_*.md into about_*.help.txt; other pages are not help.
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: HelpBuilder <docs dir> <output dir>");
    return 2;
}
string docs = args[0], output = args[1];
try
{
    var pages = Directory.GetFiles(docs, "*.md").OrderBy(f => f, StringComparer.Ordinal).ToList();
    Directory.CreateDirectory(output);
    var commandPages = pages.Select(MarkdownPage.Load).Where(p => p.FrontMatter.ContainsKey("external help file"));
    foreach (var helpFile in commandPages.GroupBy(p => p.FrontMatter["external help file"], StringComparer.OrdinalIgnoreCase))
        MamlWriter.Convert(helpFile.Select(p => p.Source)).Save(Path.Combine(output, helpFile.Key));
    foreach (var about in pages.Where(p => Path.GetFileName(p).StartsWith("about_", StringComparison.OrdinalIgnoreCase)))
    {
        // With a BOM, Windows PowerShell reads the file as UTF-8 instead of the ANSI code page.
        File.WriteAllText(Path.Combine(output, Path.GetFileNameWithoutExtension(about) + ".help.txt"), AboutWriter.Convert(about), new System.Text.UTF8Encoding(true));
    }
    return 0;
}
catch (FormatException e)
{
    // The canonical "origin: error code: text" form makes MSBuild report it as a build error.
    Console.Error.WriteLine("HelpBuilder : error HELP001: " + e.Message);
    return 1;
}
