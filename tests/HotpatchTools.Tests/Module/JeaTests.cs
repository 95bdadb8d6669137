using System.Collections;
using System.Text.RegularExpressions;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// The JEA role capability files and the sample session configuration, read as PowerShell data files in a
    /// runspace (anything but constants fails SafeGetValue) and checked against the module as imported.
    /// </summary>
    public sealed class JeaTests : IDisposable
    {
        private static readonly string Roles = Path.Combine(ModuleShell.RepoRoot, "RoleCapabilities");

        /// <summary>Every key a role capability file may have (New-PSRoleCapabilityFile's parameters).</summary>
        private static readonly string[] RoleKeys =
        {
            "GUID", "Author", "Description", "CompanyName", "Copyright", "ModulesToImport", "VisibleAliases", "VisibleCmdlets", "VisibleFunctions",
            "VisibleExternalCommands", "VisibleProviders", "ScriptsToProcess", "AliasDefinitions", "FunctionDefinitions", "VariableDefinitions",
            "EnvironmentVariables", "TypesToProcess", "FormatsToProcess", "AssembliesToLoad",
        };

        /// <summary>Keys through which a role could run code of its own or reach beyond the module: none is used.</summary>
        private static readonly string[] CodeKeys =
        {
            "VisibleAliases", "VisibleFunctions", "VisibleExternalCommands", "VisibleProviders", "ScriptsToProcess", "AliasDefinitions",
            "FunctionDefinitions", "VariableDefinitions", "EnvironmentVariables", "TypesToProcess", "FormatsToProcess", "AssembliesToLoad",
        };

        private readonly ModuleShell _sh = new ModuleShell();

        public void Dispose() => _sh.Dispose();

        private Hashtable DataFile(string path)
        {
            const string script = @"
                $tokens = $null; $errors = $null
                $ast = [System.Management.Automation.Language.Parser]::ParseFile($args[0], [ref]$tokens, [ref]$errors)
                if ($errors) { throw ('parse errors: ' + ($errors -join '; ')) }
                $table = $ast.Find({ param($a) $a -is [System.Management.Automation.Language.HashtableAst] }, $false)
                if ($null -eq $table -or $ast.EndBlock.Statements.Count -ne 1) { throw 'not a single hashtable' }
                # Throws on anything that is not a constant: script blocks, variables, commands, sub-expressions.
                , $table.SafeGetValue()";
            var result = _sh.Run(script, path);
            Assert.Empty(_sh.Errors);
            return (Hashtable)Assert.Single(result).BaseObject;
        }

        /// <summary>Cmdlet name (module prefix removed) to its allowed parameters with their ValidatePattern, or null for every parameter.</summary>
        private static Dictionary<string, Dictionary<string, string?>?> Visible(Hashtable role)
        {
            var result = new Dictionary<string, Dictionary<string, string?>?>();
            var items = role["VisibleCmdlets"] is object[] a ? a : new[] { role["VisibleCmdlets"]! };
            foreach (var item in items)
            {
                if (item is string name) { result.Add(Unqualified(name), null); continue; }
                var entry = (Hashtable)item;
                Assert.True(entry.Keys.Cast<string>().All(k => k is "Name" or "Parameters"), "unexpected keys in " + entry["Name"]);
                var parameters = (entry["Parameters"] is object[] ps ? ps : new[] { entry["Parameters"]! }).Cast<Hashtable>().ToDictionary(
                    p => (string)p["Name"]!,
                    p =>
                    {
                        Assert.True(p.Keys.Cast<string>().All(k => k is "Name" or "ValidatePattern"), "unexpected restriction on -" + p["Name"]);
                        return (string?)p["ValidatePattern"];
                    });
                result.Add(Unqualified((string)entry["Name"]!), parameters);
            }
            return result;
        }

        private static string Unqualified(string name)
        {
            // Plain names (the session imports no other module, so none can shadow them): JEA exposes a module-qualified
            // entry only under that qualified name, which no operator types.
            Assert.DoesNotContain("\\", name);
            Assert.False(name.IndexOfAny(new[] { '*', '?' }) >= 0, name + " has a wildcard");
            return name;
        }

        private static string Describe(Dictionary<string, Dictionary<string, string?>?> visible) =>
            string.Join("; ", visible.OrderBy(v => v.Key, StringComparer.Ordinal).Select(v => v.Key + (v.Value == null ? " (all)" : " " + string.Join(",", v.Value.Keys.OrderBy(k => k, StringComparer.Ordinal)))));

        [Theory]
        [InlineData("HotpatchOperator.psrc")]
        [InlineData("HotpatchAuditor.psrc")]
        public void A_role_is_a_data_file_with_only_role_keys_and_nothing_that_runs_code(string file)
        {
            var role = DataFile(Path.Combine(Roles, file));
            var keys = role.Keys.Cast<string>().ToArray();
            Assert.All(keys, k => Assert.Contains(k, RoleKeys));
            Assert.Empty(keys.Intersect(CodeKeys));
            Assert.True(Guid.TryParse((string)role["GUID"]!, out _));
            Assert.Equal("HotpatchTools", role["ModulesToImport"]);
            Assert.False(string.IsNullOrWhiteSpace((string?)role["Description"]));
        }

        [Fact]
        public void The_operator_role_installs_and_removes_by_id_only()
        {
            var visible = Visible(DataFile(Path.Combine(Roles, "HotpatchOperator.psrc")));
            Assert.Equal(
                "Get-HotpatchTarget PatchId,ProcessId; Get-Micropatch PatchId,ProcessId; Get-MicropatchCatalog PatchId; " +
                "Install-Micropatch Force,PassThru,PatchId,ProcessId; Sync-Micropatch Force,PatchId; " +
                "Uninstall-Micropatch Force,PassThru,PatchId,ProcessId",
                Describe(visible));
            // -WhatIf and -Confirm come with the cmdlets' ShouldProcess; naming them too breaks every proxy JEA builds
            // ("defined multiple times"). Plain names: a module-qualified one is all an operator could type.
            var text = File.ReadAllText(Path.Combine(Roles, "HotpatchOperator.psrc")) + File.ReadAllText(Path.Combine(Roles, "HotpatchAuditor.psrc"));
            Assert.DoesNotContain("'WhatIf'", text);
            Assert.DoesNotContain("'Confirm'", text);
            Assert.DoesNotContain("HotpatchTools\\", text);
            // A path or an unsigned file would let an operator install code nobody vetted.
            Assert.All(visible.Values, p => Assert.NotNull(p));
            Assert.DoesNotContain(visible.Values.SelectMany(p => p!.Keys), k => k is "Path" or "LiteralPath" or "AllowUnsigned");
        }

        [Fact]
        public void The_auditor_role_is_read_only()
        {
            var visible = Visible(DataFile(Path.Combine(Roles, "HotpatchAuditor.psrc")));
            Assert.Equal(
                "Get-HotpatchTarget PatchId,ProcessId; Get-Micropatch (all); Get-MicropatchAuditLog Action,After,Before,Last,PatchId,ProcessId,Result; " +
                "Get-MicropatchCatalog (all); Get-MicropatchSignature Path; Get-MicropatchTrustedPublisher (all)",
                Describe(visible));
            Assert.All(visible.Keys, c => Assert.StartsWith("Get-", c));
            // Get-MicropatchSignature reads files as the session's (administrator) account: patch files only.
            var pattern = new Regex(visible["Get-MicropatchSignature"]!["Path"]!);
            Assert.Matches(pattern, "/srv/patches/HP-2026-0001.micropatch.yaml");
            Assert.Matches(pattern, @"C:\Patches\HP-2026-0001.micropatch.yaml");
            Assert.DoesNotMatch(pattern, "/etc/shadow");
            Assert.DoesNotMatch(pattern, "/srv/patches/*.micropatch.yaml");
            Assert.DoesNotMatch(pattern, "/srv/patches/x.micropatch.yaml.sig");
            Assert.DoesNotMatch(pattern, @"\\attacker\share\x.micropatch.yaml");
            Assert.DoesNotMatch(pattern, "//attacker/share/x.micropatch.yaml");
            Assert.DoesNotMatch(pattern, @"FileSystem::\\attacker\share\x.micropatch.yaml");
        }

        [Fact]
        public void Every_command_and_parameter_the_roles_name_exists_in_the_module()
        {
            var exported = _sh.Run("(Get-Module HotpatchTools).ExportedCmdlets.Keys").Select(o => o.ToString()).ToHashSet();
            var missing = new List<string>();
            foreach (var file in new[] { "HotpatchOperator.psrc", "HotpatchAuditor.psrc" })
                foreach (var (cmdlet, parameters) in Visible(DataFile(Path.Combine(Roles, file))))
                {
                    if (!exported.Contains(cmdlet)) { missing.Add(cmdlet); continue; }
                    var known = _sh.Run("(Get-Command -Name $args[0]).Parameters.Keys", cmdlet).Select(o => o.ToString()).ToHashSet();
                    foreach (var p in parameters?.Keys ?? Enumerable.Empty<string>())
                        if (!known.Contains(p)) missing.Add(cmdlet + " -" + p);
                }
            // A JEA role that names a missing command or parameter silently does not expose it: every name must exist.
            Assert.Empty(missing.Distinct());
        }

        [Fact]
        public void No_exposed_cmdlet_takes_a_script_block_or_is_outside_the_module()
        {
            foreach (var file in new[] { "HotpatchOperator.psrc", "HotpatchAuditor.psrc" })
                foreach (var (cmdlet, _) in Visible(DataFile(Path.Combine(Roles, file))))
                {
                    var types = _sh.Run("(Get-Command -Name $args[0]).Parameters.Values | ForEach-Object { $_.ParameterType.FullName }", cmdlet).Select(o => o.ToString()).ToArray();
                    Assert.NotEmpty(types);
                    Assert.DoesNotContain(types, t => t!.Contains("ScriptBlock"));
                    Assert.Equal("HotpatchTools", _sh.Run("(Get-Command -Name $args[0]).ModuleName", cmdlet).Single().ToString());
                }
        }

        [Fact]
        public void The_sample_session_configuration_is_a_restricted_endpoint_that_maps_groups_to_the_two_roles()
        {
            var pssc = DataFile(Path.Combine(ModuleShell.RepoRoot, "docs", "HotpatchTools.pssc"));
            Assert.Equal("RestrictedRemoteServer", pssc["SessionType"]);
            Assert.Equal(true, pssc["RunAsVirtualAccount"]);
            Assert.True(Guid.TryParse((string)pssc["GUID"]!, out _));
            Assert.Empty(pssc.Keys.Cast<string>().Intersect(new[] { "LanguageMode", "ExecutionPolicy", "VisibleProviders", "VisibleExternalCommands", "ScriptsToProcess", "FunctionDefinitions", "VisibleFunctions", "VisibleAliases" }));
            var roles = ((Hashtable)pssc["RoleDefinitions"]!).Values.Cast<Hashtable>().Select(r => (string)r["RoleCapabilities"]!).OrderBy(r => r, StringComparer.Ordinal);
            Assert.Equal(new[] { "HotpatchAuditor", "HotpatchOperator" }, roles);
            Assert.All(roles, r => Assert.True(File.Exists(Path.Combine(Roles, r + ".psrc")), r + ".psrc is not in RoleCapabilities/"));
            // Windows PowerShell and PowerShell on Windows validate it themselves, as Register-PSSessionConfiguration would.
            if (_sh.Run("Get-Command Test-PSSessionConfigurationFile -ErrorAction SilentlyContinue").Count > 0)
                Assert.Equal(true, _sh.Run("Test-PSSessionConfigurationFile -Path $args[0]", Path.Combine(ModuleShell.RepoRoot, "docs", "HotpatchTools.pssc")).Single().BaseObject);
        }
    }
}
