using System.Runtime.Versioning;
using System.Threading;
using HotpatchTools.Engine.Catalog;
using HotpatchTools.Engine.Format;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// A local user's process that forges cave headers in its own memory (tests/native/forger.c) against readers
    /// running as root: each sweep costs it little, names it in a warning, and goes on with the other processes.
    /// </summary>
    [SupportedOSPlatform("linux")]
    public sealed class HostileProcessTests : IDisposable
    {
        private static string Forger => NativeBuild.Build("forger", "-O2 -pthread", "forger.c");

        private readonly LinuxTarget _t = new LinuxTarget(Forger);
        private readonly List<string> _warnings = new List<string>();
        private readonly HotpatchEngine _engine;

        public HostileProcessTests()
        {
            _engine = new HotpatchEngine(options: new EngineOptions { Warn = _warnings.Add });
        }

        public void Dispose() => _t.Dispose();

        private void Forge(string what) => Assert.Equal("ok", _t.Send("forge " + what));

        /// <summary>Bytes this thread allocated while running the action.</summary>
        private static long Allocated(Action action)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            action();
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }

        /// <summary>endbr64 (when the compiler adds it) and the 6-byte RIP-relative load after it.</summary>
        private int ForgedSiteSpan => _t.ReadSymbol("forged_site", 4).SequenceEqual(new byte[] { 0xf3, 0x0f, 0x1e, 0xfa }) ? 10 : 6;

        private Micropatch PatchForForger(string id) =>
            PatchFiles.For(_t, id, new PatchletSpec("forged_site", _t.ReadSymbol("forged_site", ForgedSiteSpan)));

        [Fact]
        public void Headers_claiming_a_megabyte_each_cost_a_reader_little_and_name_the_process()
        {
            Forge("bighdr 300"); // 300 pages, each a checksummed header of 1 MiB: 300 MiB to a reader that trusts them
            HotpatchException? e = null;
            long bytes = Allocated(() => e = Assert.Throws<HotpatchException>(() => _engine.GetInstalled(_t.Pid)));
            Assert.Equal(HotpatchErrorKind.SuspiciousProcess, e!.Kind);
            Assert.Contains("Process " + _t.Pid + " (", e.Message);
            Assert.True(bytes < 16 << 20, "reading the forger's caves allocated " + (bytes >> 20) + " MiB");
        }

        /// <summary>
        /// A memory map is as long as its process makes it: 9,000 mappings of a file with a 3,800-byte path are 34 MiB of
        /// /proc/PID/maps. The engine reads no more than 32 MiB of it and refuses the process (a partial map could
        /// hide a cave or a module); a sweep warns about it and goes on.
        /// </summary>
        [Fact]
        public void A_memory_map_larger_than_the_limit_is_refused_unread_and_a_sweep_goes_on()
        {
            var dir = Directory.CreateTempSubdirectory("hpt-longmaps-").FullName;
            try
            {
                Assert.Equal("ok", _t.Send("mapmany " + dir + " 9000"));
                Assert.True(File.ReadAllText("/proc/" + _t.Pid + "/maps").Length > 32 << 20, "the forger's map is not over the limit");
                var patch = PatchForForger("T-LONGMAPS");
                HotpatchException? e = null;
                long bytes = Allocated(() => e = Assert.Throws<HotpatchException>(() => _engine.Inspect(patch, _t.Pid)));
                Assert.Equal(HotpatchErrorKind.SuspiciousProcess, e!.Kind);
                Assert.Contains("Process " + _t.Pid + " (forger): its memory map (/proc/" + _t.Pid + "/maps) is larger than 32 MiB", e.Message);
                Assert.True(bytes < 100 << 20, "reading the forger's map allocated " + (bytes >> 20) + " MiB");
                Assert.Equal(HotpatchErrorKind.SuspiciousProcess, Assert.Throws<HotpatchException>(() => _engine.Install(patch, _t.Pid)).Kind);
                Assert.Equal(HotpatchErrorKind.SuspiciousProcess, Assert.Throws<HotpatchException>(() => _engine.GetInstalled(_t.Pid)).Kind);
                Assert.Equal("7", _t.Send("call forged_site 2")); // nothing written: the site is as it was

                using var other = new LinuxTarget(Forger);
                var found = _engine.Scan(patch).ToList();
                Assert.Equal(new[] { other.Pid }, found.Select(s => s.ProcessId).ToArray());
                Assert.Contains(_warnings, w => w.Contains("Process " + _t.Pid + " (forger): its memory map"));

                // Enforcement counts it as a process it could not read (compliance notes it), not as one that exited.
                var log = new List<string>();
                var pass = new Enforcer(_engine, log.Add).Run(new[] { patch });
                Assert.True(pass.Unreadable >= 1, "the forger was not counted as unreadable");
                Assert.Contains(log, l => l.StartsWith("cannot read the modules of process " + _t.Pid + " (", StringComparison.Ordinal) && l.Contains("is larger than 32 MiB"));
                Assert.DoesNotContain(pass.Results, r => r.ProcessId == _t.Pid);
                Assert.Equal(EnforcementOutcome.Applied, pass.Results.Single(r => r.ProcessId == other.Pid).Outcome);
            }
            finally
            {
                _t.Dispose(); // its mappings keep the file open
                Directory.Delete(dir, recursive: true);
            }
        }

        [Fact]
        public void More_caves_than_any_install_makes_are_reported_not_listed()
        {
            Forge("many 400");
            var e = Assert.Throws<HotpatchException>(() => _engine.GetInstalled(_t.Pid));
            Assert.Equal(HotpatchErrorKind.SuspiciousProcess, e.Kind);
            Assert.Contains("more than " + HotpatchEngine.MaxCavesPerProcess + " caves", e.Message);
        }

        [Fact]
        public void A_sweep_warns_about_the_forger_and_still_reports_the_other_processes()
        {
            Forge("bighdr 100");
            using var other = new LinuxTarget(Forger); // same module, honest
            var patch = PatchForForger("T-HOSTILE-SCAN");
            var found = _engine.Scan(patch).ToList();
            Assert.Equal(new[] { other.Pid }, found.Select(s => s.ProcessId).ToArray());
            Assert.Equal(TargetState.Vulnerable, found[0].State);
            Assert.Contains(_warnings, w => w.Contains("Process " + _t.Pid + " (") && w.Contains("forges"));
        }

        [Fact]
        public void Enforcement_fails_the_forger_only_and_a_watch_keeps_passing()
        {
            Forge("bighdr 100");
            using var other = new LinuxTarget(Forger);
            var patch = PatchForForger("T-HOSTILE-ENF");
            var enforcer = new Enforcer(_engine);
            var pass = enforcer.Run(new[] { patch });
            var mine = pass.Results.Single(r => r.ProcessId == _t.Pid);
            Assert.Equal(EnforcementOutcome.Failed, mine.Outcome);
            Assert.Equal(HotpatchErrorKind.SuspiciousProcess, mine.ErrorKind);
            Assert.Equal(EnforcementOutcome.Applied, pass.Results.Single(r => r.ProcessId == other.Pid).Outcome);
            Assert.Equal(22, other.Call("forged_site", 7)); // a detour without code: same result
            Assert.Equal(22, _t.Call("forged_site", 7));

            // Three passes of a watch, each over the forger too: none ends the loop.
            int passes = 0;
            using var cancel = new CancellationTokenSource();
            enforcer.Watch(() => new[] { patch }, TimeSpan.FromMilliseconds(50), p =>
            {
                if (++passes == 3) cancel.Cancel();
            }, cancel.Token);
            Assert.Equal(3, passes);
            Assert.True(_t.IsAlive);
        }

        [Fact]
        public void A_header_saying_Installed_over_the_original_bytes_does_not_make_the_process_patched()
        {
            Forge("installed"); // a cave of FORGED-STATE whose only site "was written" with the bytes that are there now
            var installed = Assert.Single(_engine.GetInstalled(_t.Pid));
            Assert.Equal("FORGED-STATE", installed.PatchId);
            Assert.Equal(PatchState.Inconsistent, installed.State);
            var patch = PatchFiles.Parse(PatchFiles.Yaml("FORGED-STATE", _t.ModuleName, new[] { new PatchletSpec("forged_site", _t.ReadSymbol("forged_site", ForgedSiteSpan)) }));
            var status = _engine.Inspect(patch, _t.Pid)!;
            Assert.NotEqual(TargetState.Patched, status.State);
            using var sh = new ModuleShell();
            var site = Assert.Single(sh.Run("Get-MicropatchSite -PatchId FORGED-STATE -ProcessId $args[0]", _t.Pid));
            Assert.NotEqual("Patched", site.Properties["State"].Value.ToString());
        }

        [Fact]
        public void A_header_with_an_installation_time_no_date_holds_is_not_a_cave()
        {
            Forge("installed");
            var (start, _) = Assert.Single(_t.CaveRegions());
            var fixedPart = _t.Read(start, 68);
            var header = _t.Read(start, (int)BitConverter.ToUInt32(fixedPart, 8));
            // The forger sets the installation time (ms since 1970) past year 9999 and makes the checksum (FNV-1a, itself as zero) right again.
            BitConverter.GetBytes(long.MaxValue).CopyTo(header, 24);
            uint sum = 2166136261;
            for (int i = 0; i < header.Length; i++) sum = (sum ^ (i >= 64 && i < 68 ? 0u : header[i])) * 16777619;
            BitConverter.GetBytes(sum).CopyTo(header, 64);
            using (var mem = new FileStream("/proc/" + _t.Pid + "/mem", FileMode.Open, FileAccess.Write))
            {
                mem.Seek((long)start, SeekOrigin.Begin);
                mem.Write(header);
            }
            Assert.Empty(_engine.GetInstalled(_t.Pid));
        }

        [Fact]
        public void A_huge_sparse_file_mapped_under_a_module_name_is_not_hashed()
        {
            var dir = Directory.CreateTempSubdirectory("hpt-sparse-").FullName;
            try
            {
                // A real ELF file made 2 GiB larger than any module by a hole: nothing to read, minutes to hash.
                var name = "libsparse" + _t.Pid + ".so";
                var path = Path.Combine(dir, name);
                File.Copy(Forger, path);
                using (var f = new FileStream(path, FileMode.Open, FileAccess.Write)) f.SetLength((2L << 30) + 4096);
                Assert.Equal("ok", _t.Send("map " + path));
                var patch = PatchFiles.Parse(PatchFiles.Yaml("T-SPARSE", name, new[] { new PatchletSpec("0x1000", new byte[] { 0x90 }) }, identity: "sha256: " + new string('0', 64)));
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var status = _engine.Inspect(patch, _t.Pid)!;
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), "inspecting took " + clock.Elapsed);
                Assert.Equal(TargetState.Mismatch, status.State);
                Assert.Contains("larger than any module", status.Reason);
            }
            finally { Directory.Delete(dir, recursive: true); }
        }

        [Fact]
        public void A_process_that_runs_another_program_under_its_pid_mid_uninstall_gets_nothing_injected()
        {
            var dir = Directory.CreateTempSubdirectory("hpt-exec-").FullName;
            try
            {
                var yaml = PatchFiles.Yaml("T-EXEC", _t.ModuleName, new[] { new PatchletSpec("forged_site", _t.ReadSymbol("forged_site", ForgedSiteSpan)) });
                var file = PatchFiles.WriteFile(dir, "T-EXEC", yaml);
                // Two threads: the cave is unmapped after the freeze (with one, within it, before the exec could come).
                Assert.Equal("ok", _t.Send("thread"));
                _engine.Install(PatchFiles.Parse(yaml), _t.Pid);
                // The uninstall restores the site and decides to free the cave, then is held before the injected munmap.
                var host = FaultHost.Start(new Dictionary<string, string> { [FailPoint.Variable] = "uninstall.before-free", [FailPoint.ResumeVariable] = "1" },
                    "", "uninstall", file, _t.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
                try
                {
                    Assert.Equal("failpoint uninstall.before-free", host.StandardOutput.ReadLine());
                    Assert.Equal("ok", _t.Send("exec /bin/sleep 60")); // same pid, another program, another address space
                    var deadline = DateTime.UtcNow.AddSeconds(10);
                    while (File.ReadAllText("/proc/" + _t.Pid + "/comm").Trim() != "sleep" && DateTime.UtcNow < deadline) Thread.Sleep(10);
                    Assert.Equal("sleep", File.ReadAllText("/proc/" + _t.Pid + "/comm").Trim());
                    // The new program's loader is still at work right after the exec (its RELRO mprotect changes the map):
                    // the map compared afterwards is the settled one.
                    string maps = "", last;
                    do
                    {
                        last = maps;
                        Thread.Sleep(100);
                        maps = File.ReadAllText("/proc/" + _t.Pid + "/maps");
                    } while (maps != last && DateTime.UtcNow < deadline.AddSeconds(10));
                    host.StandardInput.WriteLine();
                    var output = host.StandardOutput.ReadToEnd();
                    Assert.True(host.WaitForExit(30_000));
                    Assert.Contains("error ProcessExited Process " + _t.Pid + " was killed, or ran another program, while patch T-EXEC was being removed", output);
                    Thread.Sleep(200);
                    Assert.True(_t.IsAlive, "the new program died");
                    Assert.Equal(maps, File.ReadAllText("/proc/" + _t.Pid + "/maps"));
                }
                finally
                {
                    if (!host.HasExited) host.Kill();
                    host.Dispose();
                }
            }
            finally { Directory.Delete(dir, recursive: true); }
        }

        [Fact]
        public void Get_MicropatchSite_does_not_trust_a_recorded_code_length()
        {
            Forge("codelen"); // one cave whose site claims 2^31 bytes of code
            using var sh = new ModuleShell();
            var sites = sh.Run("Get-MicropatchSite -PatchId FORGED-LEN -ProcessId $args[0]", _t.Pid);
            Assert.Empty(sites);
            var error = Assert.Single(sh.Errors);
            Assert.StartsWith("NotInstalled,", error.FullyQualifiedErrorId);
        }

        [Fact]
        public void Get_Micropatch_names_the_forger_in_a_warning_and_as_an_error_when_asked_for_it()
        {
            Forge("bighdr 50");
            using var sh = new ModuleShell();
            sh.Run("Get-Micropatch | Out-Null");
            Assert.Contains(sh.Warnings, w => w.Contains("Process " + _t.Pid + " (") && w.Contains("forges"));
            sh.Run("Get-Micropatch -ProcessId $args[0]", _t.Pid);
            Assert.StartsWith("SuspiciousProcess,", Assert.Single(sh.Errors).FullyQualifiedErrorId);
        }
    }
}

namespace HotpatchTools.Tests
{
    /// <summary>A sweep that could not read some processes says so, so that it never looks complete when it is not.</summary>
    [SupportedOSPlatform("linux")]
    public sealed class UnreadableProcessTests
    {
        [Fact]
        public void Sweeps_by_an_unprivileged_user_warn_with_the_count_of_processes_they_could_not_read()
        {
            Assert.True(Engine.Platform.Linux.LibC.geteuid() == 0, "this test runs as root (it runs the module as an unprivileged user)");
            using var t = TargetProcess.Start(); // root's: nobody cannot read it
            var file = Path.Combine(PowerShellProcess.Folder, "HP-UNREAD-" + Guid.NewGuid().ToString("n")[..8] + ".micropatch.yaml");
            File.WriteAllText(file, PatchFiles.Yaml(Path.GetFileName(file).Split('.')[0], t.ModuleName, new[] { new PatchletSpec("triple", t.ReadSymbol("triple", 6)) }));
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            const string script = @"
                Import-Module -Name $args[0] -ErrorAction Stop
                Get-Micropatch | Out-Null
                'targets ' + @(Get-HotpatchTarget -Path $args[1]).Count
                $v = Get-Micropatch -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
                foreach ($r in $v) { 'verbose ' + $r.Message }";
            try
            {
                var (exit, lines, stderr) = PowerShellProcess.Run("setpriv --reuid=65534 --regid=65534 --clear-groups", script, file);
                var outcome = string.Join("\n", lines) + "\n" + stderr;
                // Get-Micropatch twice and Get-HotpatchTarget once: root's processes (the target among them) were not read.
                var warnings = lines.Where(l => l.StartsWith("warning ", StringComparison.Ordinal) && l.Contains("process(es) could not be read")).ToList();
                Assert.True(warnings.Count == 3, outcome);
                Assert.All(warnings, w => Assert.True(int.Parse(w.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture) > 0, w));
                Assert.Contains("targets 0", lines);
                // Which ones, under -Verbose.
                Assert.Contains(lines, l => l.StartsWith("verbose could not read: ", StringComparison.Ordinal) && l.Contains(t.Pid + " ("));
            }
            finally { File.Delete(file); }
        }
    }
}
