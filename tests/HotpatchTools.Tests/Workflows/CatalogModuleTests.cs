using System.Diagnostics;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using System.Runtime.Versioning;
using System.Threading;
using HotpatchTools.Engine.Machine;
using static HotpatchTools.Tests.Support.PSObjects;
using Xunit.Abstractions;

namespace HotpatchTools.Tests
{
    /// <summary>The catalog, Install-Micropatch -PatchId, Sync-Micropatch and Test-MicropatchCompliance through a hosted runspace.</summary>
    [Collection(MachineStateCollection.Name)]
    public sealed class CatalogModuleTests : CatalogModuleTest
    {
        private readonly ITestOutputHelper _out;

        public CatalogModuleTests(MachineState root, ITestOutputHelper output) : base(root, "catmod") => _out = output;

        private string Write(string id, string yaml, string? name = null) => PatchFiles.WriteFile(Path.Combine(_dir, name ?? id), id, yaml);

        private string Register(string id, string module)
        {
            var path = Write(id, WorkflowTargets.GuardYaml(id, module));
            _sh.Run("Register-Micropatch -Path $args[0] -AllowUnsigned -Force", path);
            Assert.Empty(_sh.Errors);
            return path;
        }

        [Fact]
        public void Catalog_cmdlets_register_list_disable_enable_and_unregister_by_id()
        {
            var path = Write("HP-CATM-1", WorkflowTargets.GuardYaml("HP-CATM-1", "catm-nothing"));
            var entry = _sh.Run("Register-Micropatch -Path $args[0] -AllowUnsigned -Force -PassThru", path).Single();
            Assert.Empty(_sh.Errors);
            Assert.Equal("HotpatchTools.MicropatchCatalogEntry", entry.TypeNames[0]);
            Assert.Equal("HP-CATM-1", Prop(entry, "PatchId"));
            Assert.Equal("catm-nothing", Prop(entry, "Module"));
            Assert.Equal(true, Prop(entry, "Enabled"));
            Assert.Equal(Environment.MachineName, Prop(entry, "ComputerName"));
            Assert.StartsWith(Path.Combine(_root.Path, "catalog"), (string)Prop(entry, "Path"));
            Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes((string)Prop(entry, "Path")));

            var listed = _sh.Run("Get-MicropatchCatalog").Single();
            Assert.Equal(Prop(entry, "FileSha256"), Prop(listed, "FileSha256"));

            var disabled = _sh.Run("Get-MicropatchCatalog -PatchId hp-catm-* | Disable-Micropatch -Force -PassThru").Single();
            Assert.Empty(_sh.Errors);
            Assert.Equal(false, Prop(disabled, "Enabled"));
            Assert.Equal("False", _sh.Run("(Get-MicropatchCatalog HP-CATM-1).Enabled").Single().ToString());
            _sh.Run("Enable-Micropatch -PatchId HP-CATM-1 -Force");
            Assert.Equal("True", _sh.Run("(Get-MicropatchCatalog HP-CATM-1).Enabled").Single().ToString());

            // Registering the same file again changes nothing; another file under the same id needs -Force.
            _sh.Run("Register-Micropatch -Path $args[0] -AllowUnsigned -Confirm:$false", path);
            Assert.Empty(_sh.Errors);
            var other = Write("HP-CATM-1", PatchFiles.Yaml("HP-CATM-1", "catm-nothing", new[] { new PatchletSpec("triple", WorkflowTargets.TripleBytes) }), "v2");
            _sh.Run("Register-Micropatch -Path $args[0] -AllowUnsigned -Confirm:$false", other);
            var exists = Assert.Single(_sh.Errors);
            Assert.StartsWith("AlreadyInstalled", exists.FullyQualifiedErrorId);
            Assert.Contains("Use -Force to replace it.", exists.Exception.Message);
            Assert.Equal(Prop(entry, "FileSha256"), _sh.Run("(Get-MicropatchCatalog HP-CATM-1).FileSha256").Single().ToString());
            _sh.Run("Register-Micropatch -Path $args[0] -AllowUnsigned -WhatIf -Force", other);
            Assert.Equal(Prop(entry, "FileSha256"), _sh.Run("(Get-MicropatchCatalog HP-CATM-1).FileSha256").Single().ToString());

            _sh.Run("Get-MicropatchCatalog -PatchId HP-NOPE");
            Assert.StartsWith("PatchNotRegistered", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
            Assert.Empty(_sh.Run("Get-MicropatchCatalog -PatchId HP-NOPE*"));
            Assert.Empty(_sh.Errors);

            _sh.Run("Unregister-Micropatch -PatchId HP-CATM-1 -WhatIf");
            Assert.Single(_sh.Run("Get-MicropatchCatalog"));
            _sh.Run("Unregister-Micropatch -PatchId HP-CATM-1 -Force");
            Assert.Empty(_sh.Errors);
            Assert.Empty(_sh.Run("Get-MicropatchCatalog"));
            _sh.Run("Unregister-Micropatch -PatchId HP-CATM-1 -Force");
            Assert.StartsWith("PatchNotRegistered", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
        }

        [Fact]
        [SupportedOSPlatform("linux")]
        public void Install_by_PatchId_uses_the_catalog_copy_and_refuses_disabled_modified_or_unsafe_entries()
        {
            using var t = TargetProcess.Start(WorkflowTargets.Exe("catm-install"));
            var before = t.ReadSymbol("triple", 6);
            var source = Register("HP-CATM-INST", "catm-install");
            File.Delete(source); // the catalog's copy is what counts

            var r = _sh.Run("Install-Micropatch -PatchId HP-CATM-INST -ProcessId $args[0] -Force -PassThru", t.Pid).Single();
            Assert.Empty(_sh.Errors);
            Assert.Equal("Installed", Prop(r, "Result"));
            Assert.Equal(-1, t.Call("triple", 500));
            _sh.Run("Uninstall-Micropatch -PatchId HP-CATM-INST -ProcessId $args[0] -Force", t.Pid);
            Assert.Equal(before, t.ReadSymbol("triple", 6));

            _sh.Run("Disable-Micropatch HP-CATM-INST -Force");
            _sh.Run("Install-Micropatch -PatchId HP-CATM-INST -ProcessId $args[0] -Force", t.Pid);
            Assert.StartsWith("PatchDisabled", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
            _sh.Run("Enable-Micropatch HP-CATM-INST -Force");

            var copy = _sh.Run("(Get-MicropatchCatalog HP-CATM-INST).Path").Single().ToString();
            var original = File.ReadAllText(copy);
            File.AppendAllText(copy, "# edited in place\n");
            _sh.Run("Install-Micropatch -PatchId HP-CATM-INST -ProcessId $args[0] -Force", t.Pid);
            Assert.StartsWith("CatalogEntryModified", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
            File.WriteAllText(copy, original);

            File.SetUnixFileMode(copy, (UnixFileMode)0x1b6); // 0666: anyone could put code in it
            _sh.Run("Install-Micropatch -PatchId HP-CATM-INST -ProcessId $args[0] -Force", t.Pid);
            var unsafeError = Assert.Single(_sh.Errors);
            Assert.StartsWith("CatalogEntryUntrusted", unsafeError.FullyQualifiedErrorId);
            Assert.Contains("writable by group or others", unsafeError.Exception.Message);
            Assert.Equal(before, t.ReadSymbol("triple", 6));
            Assert.Equal(0, t.CaveCount());

            _sh.Run("Install-Micropatch -PatchId HP-NOT-THERE -ProcessId $args[0] -Force", t.Pid);
            Assert.StartsWith("PatchNotRegistered", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
        }

        [Fact]
        public void Sync_applies_enabled_catalog_patches_once_per_target_and_compliance_follows()
        {
            var exe = WorkflowTargets.Exe("catm-sync");
            using var a = TargetProcess.Start(exe);
            using var b = TargetProcess.Start(exe);
            Register("HP-CATM-SYNC", "catm-sync");
            Register("HP-CATM-OFF", "catm-sync-off");
            _sh.Run("Disable-Micropatch HP-CATM-OFF -Force");
            using var off = TargetProcess.Start(WorkflowTargets.Exe("catm-sync-off"));

            var report = _sh.Run("Test-MicropatchCompliance").Single();
            Assert.Equal(false, Prop(report, "Compliant"));
            Assert.Equal(1, Prop(report, "PatchCount"));
            Assert.Equal(2, Prop(report, "Vulnerable"));
            Assert.Equal(0, Prop(report, "Patched"));
            Assert.Contains(((System.Collections.Generic.IEnumerable<string>)Prop(report, "Details")!), d => d.Contains("HP-CATM-SYNC Vulnerable in pid " + a.Pid));
            Assert.Equal(false, _sh.Run("Test-MicropatchCompliance -Quiet").Single().BaseObject);
            Assert.Equal(1501, a.Call("triple", 500)); // a question changes nothing

            var first = _sh.Run("Sync-Micropatch -Force");
            Assert.Empty(_sh.Errors);
            Assert.Equal(new[] { (a.Pid, "Applied"), (b.Pid, "Applied") },
                first.Select(o => ((int)Prop(o, "ProcessId"), Prop(o, "Result").ToString()!)).OrderBy(x => x.Item1));
            Assert.All(first, o => Assert.Equal("HP-CATM-SYNC", Prop(o, "PatchId")));
            Assert.Equal(-1, a.Call("triple", 500));
            Assert.Equal(-1, b.Call("triple", 500));
            Assert.Equal(1501, off.Call("triple", 500)); // disabled: not enforced

            var second = _sh.Run("Sync-Micropatch -Force");
            Assert.Equal(new[] { "AlreadyPatched", "AlreadyPatched" }, second.Select(o => Prop(o, "Result").ToString()));
            Assert.Equal(true, _sh.Run("Test-MicropatchCompliance -Quiet").Single().BaseObject);
            var after = _sh.Run("Test-MicropatchCompliance -Debug 5>&1").ToArray();
            foreach (var line in after.Where(o => o.BaseObject is DebugRecord)) _out.WriteLine(line.ToString());
            var compliance = after.Single(o => o.BaseObject is not DebugRecord);
            Assert.Equal(2, Prop(compliance, "Patched"));
            // Notes (such as a process even root cannot read, like this sandbox's pid 1) are not reasons.
            Assert.DoesNotContain(((System.Collections.Generic.IEnumerable<string>)Prop(compliance, "Details")!), d => !d.StartsWith("Note:", StringComparison.Ordinal));
        }

        [Fact]
        public void A_modified_catalog_entry_is_an_error_the_others_are_still_enforced_and_the_machine_is_not_compliant()
        {
            var exe = WorkflowTargets.Exe("catm-broken");
            using var t = TargetProcess.Start(exe);
            Register("HP-CATM-GOOD", "catm-broken");
            var other = Write("HP-CATM-EVIL", PatchFiles.Yaml("HP-CATM-EVIL", "catm-broken", new[] { new PatchletSpec("short_jcc", t.ReadSymbol("short_jcc", 7), "mov eax, 0\nret") }));
            _sh.Run("Register-Micropatch -Path $args[0] -AllowUnsigned -Force", other);
            var copy = _sh.Run("(Get-MicropatchCatalog HP-CATM-EVIL).Path").Single().ToString();
            // Someone with write access to the copy swaps its code: the registered hash no longer matches.
            File.WriteAllText(copy, File.ReadAllText(copy).Replace("mov eax, 0", "mov eax, 9"));

            var results = _sh.Run("Sync-Micropatch -PatchId HP-CATM-* -Force");
            var error = Assert.Single(_sh.Errors);
            Assert.StartsWith("CatalogEntryModified", error.FullyQualifiedErrorId);
            Assert.Equal("HP-CATM-EVIL", error.TargetObject);
            Assert.Equal(new[] { "HP-CATM-GOOD Applied" }, results.Select(o => Prop(o, "PatchId") + " " + Prop(o, "Result")));
            Assert.Equal(-1, t.Call("triple", 500));
            Assert.Equal(6, t.Call("short_jcc", 5)); // the swapped code never ran

            // -PatchId narrows a pass to matching entries.
            Assert.Empty(_sh.Run("Sync-Micropatch -PatchId HP-OTHER-* -Force"));
            Assert.Contains("No enabled catalog patch matches HP-OTHER-*", Assert.Single(_sh.Warnings));

            var report = _sh.Run("Test-MicropatchCompliance").Single();
            Assert.Equal(false, Prop(report, "Compliant"));
            Assert.Equal(1, Prop(report, "PatchCount"));
            Assert.Contains("HP-CATM-EVIL cannot be loaded from the catalog.", ((System.Collections.Generic.IEnumerable<string>)Prop(report, "Details")!));
        }

        [Fact]
        public void Sync_refuses_unattended_watching_without_Force_and_intervals_out_of_range()
        {
            _sh.Run("Sync-Micropatch -Watch");
            Assert.StartsWith("WatchRequiresForce", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
            _sh.Run("Sync-Micropatch -Watch -Force -Interval 0.1");
            Assert.StartsWith("IntervalOutOfRange", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
            // Numbers are seconds, TimeSpans are TimeSpans: neither is taken as ticks.
            Assert.Equal("00:00:01.5000000", _sh.Run("[HotpatchTools.Commands.SecondsOrTimeSpanAttribute]::new().Transform($null, 1.5).ToString()").Single().ToString());
            _sh.Run("Sync-Micropatch -WhatIf -Interval '00:00:03'");
            Assert.Empty(_sh.Errors);
            Assert.Contains("No enabled catalog patch", Assert.Single(_sh.Warnings));
        }

        /// <summary>Acceptance: registered first, then a vulnerable process starts and later loads a module; the watch patches both.</summary>
        [Fact]
        public void Sync_Watch_patches_a_process_started_later_and_a_module_loaded_late_and_stops_promptly()
        {
            var exe = WorkflowTargets.Exe("catm-watch");
            var lib = WorkflowTargets.Library("libcatmwatch.so");
            Register("HP-CATM-WATCH", "catm-watch");
            var libPatch = Write("HP-CATM-WLIB", WorkflowTargets.LibraryYaml("HP-CATM-WLIB", "libcatmwatch.so"));
            _sh.Run("Register-Micropatch -Path $args[0] -AllowUnsigned -Force", libPatch);
            Assert.Empty(_sh.Errors);

            var iss = InitialSessionState.CreateDefault2();
            using var rs = RunspaceFactory.CreateRunspace(iss);
            rs.Open();
            using var ps = PowerShell.Create();
            ps.Runspace = rs;
            ps.AddScript("Import-Module -Name $args[0] -ErrorAction Stop; Sync-Micropatch -Watch -Force -Interval 1").AddArgument(ModuleShell.ManifestPath);
            var output = new PSDataCollection<PSObject>();
            var running = ps.BeginInvoke<PSObject, PSObject>(null, output);
            try
            {
                Thread.Sleep(2000); // the first, full pass is over: what follows is found by incremental passes
                using var t = TargetProcess.Start(exe);
                var clock = Stopwatch.StartNew();
                while (!WorkflowTargets.SiteJumps(t, exe, "triple"))
                {
                    Assert.True(clock.Elapsed < TimeSpan.FromSeconds(6), "new process not patched by the watch within 6 s");
                    Thread.Sleep(10);
                }
                _out.WriteLine("new process patched after " + clock.Elapsed.TotalSeconds.ToString("0.00") + " s");
                Assert.Equal(-1, t.Call("triple", 500));

                using var late = TargetProcess.Start(WorkflowTargets.LateLoader("catm-watch-late"));
                Thread.Sleep(1500);
                Assert.Equal("ok", late.Send("load " + lib));
                clock.Restart();
                while (!WorkflowTargets.SiteJumps(late, lib, "lib_triple"))
                {
                    Assert.True(clock.Elapsed < TimeSpan.FromSeconds(6), "late-loaded library not patched by the watch within 6 s");
                    Thread.Sleep(10);
                }
                _out.WriteLine("late library patched after " + clock.Elapsed.TotalSeconds.ToString("0.00") + " s");
                Assert.Equal("7", late.Send("call 5"));

                // One result per change, not one per pass.
                Thread.Sleep(2500);
                var results = output.Select(o => (int)Prop(o, "ProcessId") + " " + Prop(o, "PatchId") + " " + Prop(o, "Result")).ToArray();
                Assert.Equal(new[] { t.Pid + " HP-CATM-WATCH Applied", late.Pid + " HP-CATM-WLIB Applied" }, results);
            }
            finally
            {
                var stopping = Stopwatch.StartNew();
                ps.Stop();
                _out.WriteLine("Stop() returned after " + stopping.ElapsedMilliseconds + " ms");
                Assert.True(stopping.Elapsed < TimeSpan.FromSeconds(3), "the watch took " + stopping.Elapsed + " to stop");
            }
            Assert.True(running.IsCompleted);
            Assert.Empty(ps.Streams.Error);
        }
    }
}
