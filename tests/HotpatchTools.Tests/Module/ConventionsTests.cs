using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using System.Reflection;
using System.Xml.Linq;

namespace HotpatchTools.Tests
{
    /// <summary>The conventions of well-built modules (shared/guides/style.md), checked on the module as imported.</summary>
    public sealed class ConventionsTests : IDisposable
    {
        private static readonly string[] ReadOnlyVerbs = { VerbsCommon.Get, VerbsDiagnostic.Test, VerbsCommon.Find, VerbsCommon.Search, VerbsDiagnostic.Resolve, VerbsDiagnostic.Measure, VerbsCommon.Show };

        private readonly ModuleShell _sh = new ModuleShell();
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-conventions-").FullName;

        public void Dispose()
        {
            _sh.Dispose();
            Directory.Delete(_dir, recursive: true);
        }

        /// <summary>
        /// The engine's public face: what the module (src/HotpatchTools) builds on. Everything else is internal; the test
        /// projects see it through InternalsVisibleTo. A type made public, or one dropped from the face, fails here.
        /// </summary>
        private static readonly string[] EngineFace =
        {
            "HotpatchTools.Engine.Audit.AuditAction",
            "HotpatchTools.Engine.Audit.AuditLog",
            "HotpatchTools.Engine.Audit.AuditRecord",
            "HotpatchTools.Engine.Audit.AuditResult",
            "HotpatchTools.Engine.Audit.AuditTrail",
            "HotpatchTools.Engine.Authoring.DraftRequest",
            "HotpatchTools.Engine.Authoring.MicropatchDraft",
            "HotpatchTools.Engine.Authoring.OfflineCheck",
            "HotpatchTools.Engine.Authoring.OfflineCheckResult",
            "HotpatchTools.Engine.Authoring.OfflineCheckState",
            "HotpatchTools.Engine.Authoring.PatchAuthor",
            "HotpatchTools.Engine.Catalog.CatalogEntry",
            "HotpatchTools.Engine.Catalog.CatalogSecurity",
            "HotpatchTools.Engine.Catalog.Compliance",
            "HotpatchTools.Engine.Catalog.ComplianceReport",
            "HotpatchTools.Engine.Catalog.EnforcementOutcome",
            "HotpatchTools.Engine.Catalog.EnforcementPass",
            "HotpatchTools.Engine.Catalog.EnforcementResult",
            "HotpatchTools.Engine.Catalog.Enforcer",
            "HotpatchTools.Engine.Catalog.MicropatchCatalog",
            "HotpatchTools.Engine.Format.DeclaredFunction",
            "HotpatchTools.Engine.Format.Micropatch",
            "HotpatchTools.Engine.Format.MicropatchParser",
            "HotpatchTools.Engine.Format.MicropatchTarget",
            "HotpatchTools.Engine.Format.ModuleIdentity",
            "HotpatchTools.Engine.Format.PatchMode",
            "HotpatchTools.Engine.Format.Patchlet",
            "HotpatchTools.Engine.Format.Severity",
            "HotpatchTools.Engine.Format.SiteLocation",
            "HotpatchTools.Engine.Format.TargetArch",
            "HotpatchTools.Engine.Format.TargetOs",
            "HotpatchTools.Engine.Hex",
            "HotpatchTools.Engine.HotpatchErrorKind",
            "HotpatchTools.Engine.HotpatchException",
            "HotpatchTools.Engine.Inspection.ModuleDescription",
            "HotpatchTools.Engine.Inspection.ProcessInspector",
            "HotpatchTools.Engine.Inspection.SiteDescription",
            "HotpatchTools.Engine.Inspection.SiteState",
            "HotpatchTools.Engine.Machine.MachinePaths",
            "HotpatchTools.Engine.Machine.Privilege",
            "HotpatchTools.Engine.Modules.DebugFiles",
            "HotpatchTools.Engine.Modules.IModuleImage",
            "HotpatchTools.Engine.Modules.ModuleFormat",
            "HotpatchTools.Engine.Patching.EngineOptions",
            "HotpatchTools.Engine.Patching.FleetOutcome`2",
            "HotpatchTools.Engine.Patching.HotpatchEngine",
            "HotpatchTools.Engine.Patching.InstallAction",
            "HotpatchTools.Engine.Patching.InstallDecision",
            "HotpatchTools.Engine.Patching.InstallResult",
            "HotpatchTools.Engine.Patching.InstalledPatch",
            "HotpatchTools.Engine.Patching.PatchState",
            "HotpatchTools.Engine.Patching.PreparedInstall",
            "HotpatchTools.Engine.Patching.SiteRecord",
            "HotpatchTools.Engine.Patching.TargetState",
            "HotpatchTools.Engine.Patching.TargetStatus",
            "HotpatchTools.Engine.Patching.UninstallResult",
            "HotpatchTools.Engine.Platform.IFrozenProcess",
            "HotpatchTools.Engine.Platform.IModuleEnumerator",
            "HotpatchTools.Engine.Platform.IModuleProcessFilter",
            "HotpatchTools.Engine.Platform.IProcessMemory",
            "HotpatchTools.Engine.Platform.IProcessPlatform",
            "HotpatchTools.Engine.Platform.ITargetProcess",
            "HotpatchTools.Engine.Platform.IThreadController",
            "HotpatchTools.Engine.Platform.LoadedModule",
            "HotpatchTools.Engine.Platform.MemoryRegion",
            "HotpatchTools.Engine.Platform.ProcessInfo",
            "HotpatchTools.Engine.Platform.ThreadSnapshot",
            "HotpatchTools.Engine.Trust.PatchRefusedException",
            "HotpatchTools.Engine.Trust.PatchSignature",
            "HotpatchTools.Engine.Trust.PatchSigner",
            "HotpatchTools.Engine.Trust.SignatureStatus",
            "HotpatchTools.Engine.Trust.SignatureVerifier",
            "HotpatchTools.Engine.Trust.TrustKind",
            "HotpatchTools.Engine.Trust.TrustPolicy",
            "HotpatchTools.Engine.Trust.TrustStore",
            "HotpatchTools.Engine.Trust.TrustedPublisher",
            "HotpatchTools.Engine.Trust.VerifiedFile",
        };

        private CmdletInfo[] Cmdlets() =>
            _sh.Run("Get-Command -Module HotpatchTools -CommandType Cmdlet").Select(o => (CmdletInfo)o.BaseObject).ToArray();

        private static Hashtable Manifest()
        {
            var ast = Parser.ParseFile(ModuleShell.ManifestPath, out _, out var errors);
            Assert.Empty(errors);
            return (Hashtable)((HashtableAst)ast.Find(a => a is HashtableAst, searchNestedScriptBlocks: false)!).SafeGetValue();
        }

        private static string[] Strings(object? value) => value is object[] items ? items.Cast<string>().ToArray() : new[] { (string)value! };

        private static XDocument Views() => XDocument.Load(Path.Combine(ModuleShell.RepoRoot, "HotpatchTools.format.ps1xml"));

        [Fact]
        public void The_engine_exports_only_the_types_the_module_builds_on()
        {
            var exported = typeof(HotpatchTools.Engine.HotpatchException).Assembly.GetExportedTypes()
                .Select(t => t.FullName!).OrderBy(n => n, StringComparer.Ordinal).ToArray();
            Assert.True(EngineFace.SequenceEqual(exported),
                "made public: " + string.Join(", ", exported.Except(EngineFace)) + "; no longer public: " + string.Join(", ", EngineFace.Except(exported)));
        }

        [Fact]
        public void Exported_cmdlets_use_approved_verbs()
        {
            var approved = new[] { typeof(VerbsCommon), typeof(VerbsCommunications), typeof(VerbsData), typeof(VerbsDiagnostic), typeof(VerbsLifecycle), typeof(VerbsOther), typeof(VerbsSecurity) }
                .SelectMany(t => t.GetFields(BindingFlags.Public | BindingFlags.Static)).Select(f => (string)f.GetValue(null)!).ToHashSet();
            var cmdlets = Cmdlets();
            Assert.NotEmpty(cmdlets);
            Assert.All(cmdlets, c => Assert.Contains(c.Verb, approved));
        }

        [Fact]
        public void State_changing_cmdlets_confirm_with_high_impact_and_offer_Force_and_PassThru()
        {
            // New-Micropatch writes a new file, as New-Item does: it confirms at the default (medium) impact.
            var changing = Cmdlets().Where(c => !ReadOnlyVerbs.Contains(c.Verb) && c.Name != "New-Micropatch").ToArray();
            Assert.Equal(new[] { "Add-MicropatchTrustedPublisher", "Disable-Micropatch", "Enable-Micropatch", "Install-Micropatch", "Register-Micropatch", "Remove-MicropatchTrustedPublisher", "Set-MicropatchSignature", "Sync-Micropatch", "Uninstall-Micropatch", "Unregister-Micropatch" },
                changing.Select(c => c.Name).OrderBy(n => n, StringComparer.Ordinal));
            var newFile = Cmdlets().Single(c => c.Name == "New-Micropatch");
            Assert.True(new CommandMetadata(newFile).SupportsShouldProcess);
            Assert.Contains("Force", newFile.Parameters.Keys);
            foreach (var c in changing)
            {
                var metadata = new CommandMetadata(c);
                Assert.True(metadata.SupportsShouldProcess, c.Name + " does not support ShouldProcess");
                Assert.Equal(ConfirmImpact.High, metadata.ConfirmImpact);
                Assert.Contains("Force", c.Parameters.Keys);
                // Sync-Micropatch's report (one result per target) is its purpose, not something to pass through.
                if (c.Name != "Sync-Micropatch") Assert.Contains("PassThru", c.Parameters.Keys);
            }
        }

        [Fact]
        public void Every_cmdlet_declares_its_output_type()
        {
            Assert.All(Cmdlets(), c => Assert.True(c.OutputType.Count > 0, c.Name + " has no [OutputType]"));
        }

        [Fact]
        public void No_parameter_takes_a_ScriptBlock()
        {
            // A script block argument would let a constrained (JEA) operator run arbitrary code through us.
            foreach (var c in Cmdlets())
                foreach (var p in c.Parameters.Values)
                    Assert.False(typeof(ScriptBlock).IsAssignableFrom(p.ParameterType.IsArray ? p.ParameterType.GetElementType() : p.ParameterType),
                        c.Name + " -" + p.Name + " takes a ScriptBlock");
        }

        [Fact]
        public void Manifest_exports_exactly_the_module_cmdlets_for_Desktop_and_Core_from_PowerShell_5_1()
        {
            var manifest = Manifest();
            var listed = Strings(manifest["CmdletsToExport"]);
            Assert.DoesNotContain(listed, n => WildcardPattern.ContainsWildcardCharacters(n));
            Assert.Equal(Cmdlets().Select(c => c.Name).OrderBy(n => n), listed.OrderBy(n => n));
            Assert.Equal(new[] { "Core", "Desktop" }, Strings(manifest["CompatiblePSEditions"]).OrderBy(e => e));
            Assert.Equal("5.1", manifest["PowerShellVersion"]);
            Assert.Equal(new[] { "HotpatchTools.format.ps1xml" }, Strings(manifest["FormatsToProcess"]));
            var formats = _sh.Run("(Get-Module HotpatchTools).ExportedFormatFiles").Select(o => o.ToString()).ToArray();
            Assert.Equal(new[] { Path.Combine(ModuleShell.RepoRoot, "HotpatchTools.format.ps1xml") }, formats);
        }

        [Fact]
        public void Each_output_type_and_its_Deserialized_twin_share_a_table_view_that_fits_80_columns()
        {
            // PowerShell reports a format file it cannot load as an error of the import, and imports anyway.
            Assert.Empty(_sh.Errors);
            // The module's own types; Test-MicropatchCompliance -Quiet also returns a plain System.Boolean.
            var outputTypes = Cmdlets().SelectMany(c => c.OutputType).Select(t => t.Name).Where(n => n.StartsWith("HotpatchTools.", StringComparison.Ordinal)).Distinct().ToArray();
            Assert.NotEmpty(outputTypes);
            var views = Views().Descendants("View").ToArray();
            foreach (var type in outputTypes)
            {
                var view = Assert.Single(views, v => v.Element("ViewSelectedBy")!.Elements("TypeName").Any(t => t.Value == type));
                Assert.Equal(new[] { type, "Deserialized." + type }, view.Element("ViewSelectedBy")!.Elements("TypeName").Select(t => t.Value));
                var table = view.Element("TableControl");
                Assert.NotNull(table);

                var widths = table!.Descendants("TableColumnHeader").Select(h => int.Parse(h.Element("Width")?.Value ?? "0")).ToArray();
                Assert.DoesNotContain(0, widths); // an unsized column takes whatever the console has left
                // Format-Table puts one space between columns.
                Assert.True(widths.Sum() + widths.Length - 1 <= 80, type + " needs " + (widths.Sum() + widths.Length - 1) + " columns");

                var shown = table.Descendants("TableColumnItem").Select(i => i.Element("PropertyName")!.Value).ToArray();
                Assert.Equal(widths.Length, shown.Length);
                var properties = _sh.Run("[type]$args[0] | ForEach-Object { $_.GetProperties() } | ForEach-Object Name", type).Select(o => o.ToString()).ToArray();
                Assert.All(shown, p => Assert.Contains(p, properties));
            }
        }

        [Fact]
        public void ProcessId_PatchId_and_Path_parameters_complete_their_values()
        {
            var completed = new[] { "ProcessId", "PatchId", "Path" };
            // These -Path parameters name a certificate file and an audit log, not a patch: PowerShell's own file completion serves them.
            var anyFile = new[] { ("Add-MicropatchTrustedPublisher", "Path"), ("Get-MicropatchAuditLog", "Path") };
            var parameters = Cmdlets().SelectMany(c => c.Parameters.Values.Where(p => completed.Contains(p.Name)).Select(p => (Cmdlet: c.Name, Parameter: p)))
                .Where(p => !anyFile.Contains((p.Cmdlet, p.Parameter.Name))).ToArray();
            Assert.Equal(27, parameters.Length);
            Assert.All(parameters, p => Assert.True(p.Parameter.Attributes.OfType<ArgumentCompleterAttribute>().Any(), p.Cmdlet + " -" + p.Parameter.Name + " has no completer"));
        }

        private CompletionResult[] Complete(string input) =>
            _sh.Run("[System.Management.Automation.CommandCompletion]::CompleteInput($args[0], $args[0].Length, $null).CompletionMatches", input)
                .Select(o => (CompletionResult)o.BaseObject).ToArray();

        [Fact]
        public void ProcessId_completion_offers_running_processes_by_id_prefix_with_their_names()
        {
            using var target = TargetProcess.Start();
            var pid = target.Pid.ToString();
            var results = Complete("Get-Micropatch -ProcessId " + pid[..^1]);
            Assert.All(results, r => Assert.StartsWith(pid[..^1], r.CompletionText));
            var mine = Assert.Single(results, r => r.CompletionText == pid);
            // Linux keeps 15 characters of a process name.
            var name = target.ModuleName.Length > 15 ? target.ModuleName[..15] : target.ModuleName;
            Assert.Equal(name, mine.ToolTip);
            Assert.Contains(name, mine.ListItemText);
        }

        [Fact]
        public void PatchId_completion_offers_ids_installed_in_the_named_process_and_ids_of_patch_files_in_the_current_folder()
        {
            using var target = TargetProcess.Start();
            var installed = PatchFiles.Write(Path.Combine(_dir, "elsewhere"), target, "HP-COMPL-1");
            _sh.Run("Install-Micropatch -Path $args[0] -ProcessId $args[1] -AllowUnsigned -Force", installed, target.Pid);
            Assert.Empty(_sh.Errors);
            PatchFiles.WriteFile(_dir, "HP-COMPL-2", PatchFiles.Yaml("HP-COMPL-2", target.ModuleName, new[] { new PatchletSpec("triple", target.ReadSymbol("triple", 6)) }));
            File.WriteAllText(Path.Combine(_dir, "broken.micropatch.yaml"), "id: [");
            _sh.Run("$null = $ExecutionContext.SessionState.Path.SetLocation($args[0])", _dir);

            try
            {
                // With -ProcessId bound only that process is read; a machine-wide sweep stops at a time budget.
                var results = Complete("Uninstall-Micropatch -ProcessId " + target.Pid + " -PatchId hp-compl");
                Assert.Equal(new[] { "HP-COMPL-1", "HP-COMPL-2" }, results.Select(r => r.CompletionText));
                Assert.Contains("installed in 1 process", results[0].ToolTip);
                Assert.Contains("HP-COMPL-2.micropatch.yaml", results[1].ToolTip);
                Assert.Equal(new[] { "HP-COMPL-1" }, Complete("Get-Micropatch -ProcessId " + target.Pid + " -PatchId HP-COMPL-1").Select(r => r.CompletionText));
            }
            finally
            {
                _sh.Run("Uninstall-Micropatch -PatchId HP-COMPL-1 -ProcessId $args[0] -Force", target.Pid);
            }
        }

        [Fact]
        public void Path_completion_offers_patch_files_and_folders_relative_to_the_current_folder()
        {
            var yaml = PatchFiles.Yaml("HP-PATH-1", "libexample.so", new[] { new PatchletSpec("f", new byte[] { 0x90, 0x90, 0x90, 0x90, 0x90 }) });
            PatchFiles.WriteFile(_dir, "HP-PATH-1", yaml);
            File.WriteAllText(Path.Combine(_dir, "HP-notes.txt"), "not a patch");
            Directory.CreateDirectory(Path.Combine(_dir, "hp-archive"));
            File.WriteAllText(Path.Combine(_dir, "hp-archive", "old [v1].micropatch.yaml"), yaml);
            _sh.Run("$null = $ExecutionContext.SessionState.Path.SetLocation($args[0])", _dir);

            Assert.Equal(new[] { "hp-archive", "HP-PATH-1.micropatch.yaml" }, Complete("Install-Micropatch -Path hp").Select(r => r.CompletionText));
            // Quoted for the space, wildcard characters escaped because -Path takes wildcards.
            var nested = Assert.Single(Complete("Get-HotpatchTarget -Path hp-archive/"));
            Assert.Equal("'hp-archive/old `[v1`].micropatch.yaml'", nested.CompletionText);
            Assert.Equal("HP-PATH-1", _sh.Run("(Get-HotpatchTarget -Path " + nested.CompletionText + " -ProcessId $args[0]).PatchId", Environment.ProcessId).Single().ToString());
        }
    }
}
