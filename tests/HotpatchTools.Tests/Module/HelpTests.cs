using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// The module's external help as a user meets it (Get-Help in a fresh runspace that imported the
    /// manifest), checked against the cmdlets' own metadata; and the Markdown-to-MAML converter on its own.
    /// </summary>
    public sealed class HelpTests : IDisposable
    {
        private const string FieldSeparator = "\u001f";
        private readonly ModuleShell _sh = new ModuleShell();
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-help-").FullName;

        public void Dispose()
        {
            _sh.Dispose();
            Directory.Delete(_dir, recursive: true);
        }

        private string[] Lines(string script, params object[] args)
        {
            var result = _sh.Run(script, args).Select(o => o.ToString()).ToArray();
            Assert.Empty(_sh.Errors);
            return result;
        }

        private string[] ExportedCmdlets()
        {
            var names = Lines("(Get-Module HotpatchTools).ExportedCmdlets.Keys");
            Assert.NotEmpty(names);
            return names;
        }

        [Fact]
        public void Examples_of_Install_Micropatch_are_the_documented_ones()
        {
            var shown = Lines("(Get-Help -Name Install-Micropatch -Examples).examples.example | ForEach-Object { $_.code }");
            var documented = Regex.Matches(File.ReadAllText(Path.Combine(ModuleShell.RepoRoot, "docs", "Install-Micropatch.md")).Replace("\r\n", "\n"), "```powershell\\n(.*?)\\n```", RegexOptions.Singleline)
                .Select(m => m.Groups[1].Value).ToArray();

            Assert.True(documented.Length >= 2, "docs/Install-Micropatch.md has " + documented.Length + " examples");
            Assert.Equal(documented, shown.Select(s => s.Replace("\r\n", "\n")));
            Assert.Contains(shown, code => code.Contains("Install-Micropatch -Path ./demo/HP-DEMO-0001.micropatch.yaml -WhatIf"));
        }

        [Fact]
        public void Every_cmdlet_has_a_written_synopsis_and_every_parameter_a_description()
        {
            var problems = new List<string>();
            foreach (var name in ExportedCmdlets())
            {
                var help = _sh.Run("Get-Help -Name $args[0] -Full", name).Single();
                if (!help.TypeNames.Contains("MamlCommandHelpInfo")) problems.Add(name + ": help is not read from the MAML file (" + help.TypeNames[0] + ")");
                // Without a help file, Get-Help makes the synopsis from the syntax, which starts with the name.
                string synopsis = help.Properties["Synopsis"].Value?.ToString()?.Trim() ?? "";
                if (synopsis.Length == 0 || synopsis.StartsWith(name, StringComparison.OrdinalIgnoreCase)) problems.Add(name + ": generated synopsis '" + synopsis + "'");
                if (Lines("(Get-Help -Name $args[0] -Full).description | ForEach-Object Text", name).All(string.IsNullOrWhiteSpace)) problems.Add(name + ": no description");

                var described = Lines("$separator = $args[1]; (Get-Help -Name $args[0] -Full).parameters.parameter | ForEach-Object { $_.name + $separator + (($_.description | ForEach-Object Text) -join ' ') }", name, FieldSeparator)
                    .Select(l => l.Split(FieldSeparator))
                    .ToDictionary(f => f[0], f => f[1], StringComparer.OrdinalIgnoreCase);
                var parameters = Lines("$common = [System.Management.Automation.Cmdlet]::CommonParameters; (Get-Command -Name $args[0]).Parameters.Keys | Where-Object { $common -notcontains $_ }", name);
                Assert.NotEmpty(parameters);
                foreach (var p in parameters)
                    if (!described.TryGetValue(p, out var text) || string.IsNullOrWhiteSpace(text)) problems.Add(name + " -" + p + ": no description");
                foreach (var p in described.Keys.Except(parameters, StringComparer.OrdinalIgnoreCase)) problems.Add(name + " -" + p + ": described, but the cmdlet has no such parameter");
            }
            Assert.Empty(problems);
        }

        [Fact]
        public void Syntax_and_parameter_fields_match_the_cmdlet_metadata()
        {
            // One line per parameter set, "Name:required:position:pipeline input" per parameter, in the
            // words of MAML; sets are compared as a whole because MAML syntax items have no names. Sorted
            // here, not in the script: the hosted runspace has no Sort-Object.
            const string fromMetadata = @"
                $common = [System.Management.Automation.Cmdlet]::CommonParameters
                (Get-Command -Name $args[0]).ParameterSets | ForEach-Object {
                    ($_.Parameters | Where-Object { $common -notcontains $_.Name } | ForEach-Object {
                        $how = @(); if ($_.ValueFromPipelineByPropertyName) { $how += 'ByPropertyName' }; if ($_.ValueFromPipeline) { $how += 'ByValue' }
                        $pipeline = if ($how) { 'True (' + ($how -join ', ') + ')' } else { 'False' }
                        $position = if ($_.Position -lt 0) { 'named' } else { [string]$_.Position }
                        $_.Name + ':' + $_.IsMandatory.ToString().ToLowerInvariant() + ':' + $position + ':' + $pipeline
                    }) -join '|'
                }";
            const string fromHelp = @"
                (Get-Help -Name $args[0] -Full).syntax.syntaxItem | ForEach-Object {
                    ($_.parameter | ForEach-Object { $_.name + ':' + $_.required + ':' + $_.position + ':' + $_.pipelineInput }) -join '|'
                }";
            IEnumerable<string> Sorted(string[] sets) =>
                sets.Select(s => string.Join("|", s.Split('|').OrderBy(p => p, StringComparer.Ordinal))).OrderBy(s => s, StringComparer.Ordinal);
            foreach (var name in ExportedCmdlets())
                Assert.Equal(Sorted(Lines(fromMetadata, name)), Sorted(Lines(fromHelp, name)));
        }

        [Fact]
        public void Alias_shows_the_help_of_its_cmdlet()
        {
            Assert.Equal(Lines("(Get-Help -Name Uninstall-Micropatch).Synopsis"), Lines("(Get-Help -Name Remove-Micropatch).Synopsis"));
        }

        [Theory]
        [InlineData("about_HotpatchTools", "Fixes vulnerable code in running processes without restarting them.")]
        [InlineData("about_Micropatch_Format", "Describes micropatch files, which HotpatchTools installs into processes.")]
        [InlineData("about_HotpatchTools_Trust", "Explains signed micropatches, trusted publishers, the audit log and JEA.")]
        [InlineData("about_HotpatchTools_Fleet", "Describes fleet patching with HotpatchTools over PowerShell remoting.")]
        [InlineData("about_HotpatchTools_Enforcement", "Keeps a computer patched: machine catalog, enforcement and compliance.")]
        [InlineData("about_Micropatch_Authoring", "Writes an emergency micropatch, from a vulnerable function to a signed file.")]
        public void About_topics_are_found_with_their_synopsis(string topic, string synopsis)
        {
            string text = string.Join("\n", Lines("Get-Help -Name $args[0]", topic));
            Assert.StartsWith("TOPIC", text.TrimStart('\uFEFF'));
            Assert.Contains(topic, text);
            Assert.Contains("LONG DESCRIPTION", text);
            // Asked for by name, Get-Help shows the topic; listed among others, it shows the synopsis.
            Assert.Equal(new[] { synopsis }, Lines("Get-Help -Name about_* | Where-Object Name -eq $args[0] | ForEach-Object Synopsis", topic));
        }

        // ---- the converter (tools/HelpBuilder), loaded from where the module build put it ----

        private static Assembly HelpBuilder()
        {
            // The module build builds the tool in the configuration of the build, and so of this assembly.
            string configuration = typeof(HelpTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;
            string path = Path.Combine(ModuleShell.RepoRoot, "tools", "HelpBuilder", "bin", configuration, "HelpBuilder.dll");
            Assert.True(File.Exists(path), path + " is missing; building src/HotpatchTools builds it.");
            return Assembly.LoadFrom(path);
        }

        private static Func<IEnumerable<string>, XDocument> MamlConvert =>
            HelpBuilder().GetType("HotpatchTools.HelpBuilder.MamlWriter", throwOnError: true)!.GetMethod("Convert")!.CreateDelegate<Func<IEnumerable<string>, XDocument>>();

        private static Func<string, string> AboutConvert =>
            HelpBuilder().GetType("HotpatchTools.HelpBuilder.AboutWriter", throwOnError: true)!.GetMethod("Convert")!.CreateDelegate<Func<string, string>>();

        private static string SamplePage => SamplePageText.Replace("\r\n", "\n");

        private const string SamplePageText = @"---
external help file: Sample.dll-Help.xml
---

# Set-Sample

## SYNOPSIS
Sets a **sample** value.

## SYNTAX

### ByName (Default)
```
Set-Sample [-Name] <String[]> [-Force] [<CommonParameters>]
```

### ById
```
Set-Sample -Id <Int32> [<CommonParameters>]
```

## DESCRIPTION
The `Set-Sample` cmdlet sets
a value, see [about_Sample](about_Sample.md).

- first item
- second item
  continued

## EXAMPLES

### Example 1: Set one
```powershell
Set-Sample -Name one
```

Sets one.

## PARAMETERS

### -Name
The names.

```yaml
Type: String[]
Parameter Sets: ByName
Aliases: N

Required: True
Position: 0
Default value: None
Accept pipeline input: True (ByValue)
Accept wildcard characters: True
```

### -Id
The id.

```yaml
Type: Int32
Parameter Sets: ById
Aliases:

Required: True
Position: Named
Default value: None
Accept pipeline input: False
Accept wildcard characters: False
```

### -Force
Does it anyway.

```yaml
Type: SwitchParameter
Parameter Sets: ByName
Aliases:

Required: False
Position: Named
Default value: False
Accept pipeline input: False
Accept wildcard characters: False
```

### CommonParameters
This cmdlet supports the common parameters.

## INPUTS

### System.String[]
Names.

## OUTPUTS

### None
Nothing.

## NOTES
A note.

## RELATED LINKS

[Get-Sample](Get-Sample.md)

[Online](https://example.invalid/set-sample)
";

        private string WriteFile(string name, string text)
        {
            var path = Path.Combine(_dir, name);
            File.WriteAllText(path, text);
            return path;
        }

        [Fact]
        public void Converter_writes_MAML_that_Get_Help_understands()
        {
            var doc = MamlConvert(new[] { WriteFile("Set-Sample.md", SamplePage) });
            XNamespace maml = "http://schemas.microsoft.com/maml/2004/10", command = "http://schemas.microsoft.com/maml/dev/command/2004/10", dev = "http://schemas.microsoft.com/maml/dev/2004/10";

            Assert.Equal("helpItems", doc.Root!.Name.LocalName);
            Assert.Equal("maml", doc.Root.GetPrefixOfNamespace(maml));
            Assert.Equal("command", doc.Root.GetPrefixOfNamespace(command));
            Assert.Equal("dev", doc.Root.GetPrefixOfNamespace(dev));
            var cmd = Assert.Single(doc.Root.Elements(command + "command"));
            var details = cmd.Element(command + "details")!;
            Assert.Equal(new[] { "Set-Sample", "Set", "Sample" }, new[] { "name", "verb", "noun" }.Select(n => details.Element(command + n)!.Value));
            Assert.Equal("Sets a sample value.", details.Element(maml + "description")!.Element(maml + "para")!.Value);
            Assert.Equal(new[] { "The Set-Sample cmdlet sets a value, see about_Sample.", "- first item\n- second item continued" },
                cmd.Element(maml + "description")!.Elements(maml + "para").Select(p => p.Value));

            var parameters = cmd.Element(command + "parameters")!.Elements(command + "parameter").ToList();
            Assert.Equal(new[] { "Name", "Id", "Force" }, parameters.Select(p => p.Element(maml + "name")!.Value));
            var name = parameters[0];
            Assert.Equal(("true", "0", "True (ByValue)", "true", "N"),
                ((string)name.Attribute("required")!, (string)name.Attribute("position")!, (string)name.Attribute("pipelineInput")!, (string)name.Attribute("globbing")!, (string)name.Attribute("aliases")!));
            Assert.Equal("The names.", name.Element(maml + "description")!.Value);
            Assert.Equal("String[]", name.Element(command + "parameterValue")!.Value);
            Assert.Equal("String[]", name.Element(dev + "type")!.Element(maml + "name")!.Value);
            Assert.Equal(("named", "none"), ((string)parameters[1].Attribute("position")!, (string)parameters[1].Attribute("aliases")!));
            Assert.Null(parameters[2].Element(command + "parameterValue")); // a switch takes no value

            var syntax = cmd.Element(command + "syntax")!.Elements(command + "syntaxItem").ToList();
            Assert.Equal(new[] { "Name,Force", "Id" }, syntax.Select(s => string.Join(",", s.Elements(command + "parameter").Select(p => p.Element(maml + "name")!.Value))));
            Assert.All(syntax, s => Assert.Equal("Set-Sample", s.Element(maml + "name")!.Value));

            var example = Assert.Single(cmd.Element(command + "examples")!.Elements(command + "example"));
            Assert.Contains("Example 1: Set one", example.Element(maml + "title")!.Value);
            Assert.Equal("Set-Sample -Name one", example.Element(dev + "code")!.Value);
            Assert.Equal("Sets one.", example.Element(dev + "remarks")!.Value);

            Assert.Equal("System.String[]", cmd.Element(command + "inputTypes")!.Element(command + "inputType")!.Element(dev + "type")!.Element(maml + "name")!.Value);
            Assert.Equal("None", cmd.Element(command + "returnValues")!.Element(command + "returnValue")!.Element(dev + "type")!.Element(maml + "name")!.Value);
            Assert.Equal("A note.", cmd.Element(maml + "alertSet")!.Value);
            Assert.Equal(new[] { ("Get-Sample", ""), ("Online", "https://example.invalid/set-sample") },
                cmd.Element(command + "relatedLinks")!.Elements(maml + "navigationLink").Select(l => (l.Element(maml + "linkText")!.Value, l.Element(maml + "uri")!.Value)));
        }

        [Fact]
        public void Converter_refuses_a_parameter_without_description()
        {
            var page = WriteFile("Set-Sample.md", SamplePage.Replace("### -Id\nThe id.\n", "### -Id\n"));
            var e = Assert.Throws<FormatException>(() => MamlConvert(new[] { page }));
            Assert.Contains("-Id has no description", e.Message);
        }

        [Fact]
        public void Converter_refuses_a_syntax_that_names_an_undocumented_parameter()
        {
            var page = WriteFile("Set-Sample.md", SamplePage.Replace("Set-Sample -Id <Int32>", "Set-Sample -Id <Int32> [-Verbatim]"));
            var e = Assert.Throws<FormatException>(() => MamlConvert(new[] { page }));
            Assert.Contains("-Verbatim", e.Message);
        }

        [Fact]
        public void Converter_writes_about_topics_as_console_text()
        {
            var page = WriteFile("about_Sample.md", "# about_Sample\n\n## SHORT DESCRIPTION\nA sample.\n\n## LONG DESCRIPTION\nText with `code` that is long enough to be wrapped at the eightieth column: so it goes on.\n\n```powershell\nSet-Sample -Name one\n```\n\n- an item\n- another\n");
            var lines = AboutConvert(page).Replace("\r\n", "\n").Split('\n');
            Assert.Equal(new[]
            {
                "TOPIC", "    about_Sample", "", "SHORT DESCRIPTION", "    A sample.", "", "LONG DESCRIPTION",
                "    Text with code that is long enough to be wrapped at the eightieth column: so",
                "    it goes on.", "", "        Set-Sample -Name one", "", "    - an item", "    - another", "",
            }, lines);
        }
    }
}
