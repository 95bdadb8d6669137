using System.Globalization;
using System.Net.Sockets;
using System.Runtime.Versioning;
using System.Text;
using System.Threading;
using HotpatchTools.Engine.Audit;
using HotpatchTools.Engine.Machine;

namespace HotpatchTools.Tests
{
    /// <summary>The audit trail: whole lines under concurrent writers, the engine's own records, syslog, reading back.</summary>
    public sealed class AuditTests : IDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-audit-").FullName;
        private readonly string _run = Guid.NewGuid().ToString("n")[..8].ToUpperInvariant();

        public void Dispose() => Directory.Delete(_dir, recursive: true);

        [Fact]
        public void Concurrent_writers_in_many_processes_and_threads_leave_only_whole_lines()
        {
            const int processes = 4, refusalsEach = 60, threads = 8, linesEach = 30, bigField = 100_000;
            var id = "HP-CONCUR-" + _run;
            // Readable by the host processes; unsigned, so each Install-Micropatch is one refusal, one audit line.
            var file = PatchFiles.WriteFile(_dir, id, PatchFiles.Yaml(id, "libnothere.so", new[] { new PatchletSpec("f", new byte[] { 0x90, 0x90, 0x90, 0x90, 0x90 }) }));
            var go = Path.Combine(_dir, "go");
            // Each host says when it is ready and waits for the others and for this process's writers, so all write at once.
            var script = "Import-Module -Name $args[0] -ErrorAction Stop\n[Console]::WriteLine('ready'); [Console]::Out.Flush()\n" +
                         "while (-not [System.IO.File]::Exists($args[2])) { [System.Threading.Thread]::Sleep(5) }\n" +
                         "foreach ($i in 1.." + refusalsEach + ") { Install-Micropatch -Path $args[1] -Force -ErrorAction SilentlyContinue }\n'done'";

            var hosts = Enumerable.Range(0, processes).Select(_ => PowerShellProcess.Start("", script, file, go)).ToList();
            foreach (var h in hosts) Assert.Equal("ready", h.StandardOutput.ReadLine());
            // Meanwhile this process appends long lines from many threads: a torn write would split or merge them.
            var log = AuditLog.Machine;
            using var start = new Barrier(threads + 1);
            var writers = Enumerable.Range(0, threads).Select(k => new Thread(() =>
            {
                start.SignalAndWait();
                for (int i = 0; i < linesEach; i++)
                    log.Append(new AuditRecord { Action = AuditAction.Install, Result = AuditResult.Failed, PatchId = "HP-BIG-" + _run, ProcessId = k * 1000 + i, Error = new string((char)('a' + k), bigField) });
            })).ToList();
            writers.ForEach(w => w.Start());
            File.WriteAllText(go, "");
            start.SignalAndWait();
            writers.ForEach(w => Assert.True(w.Join(TimeSpan.FromSeconds(120)), "a writer thread hung"));
            foreach (var h in hosts)
            {
                var stdout = h.StandardOutput.ReadToEnd();
                Assert.True(h.WaitForExit(120_000), "a PowerShell host hung");
                // 1: the refusals are errors, silenced; 2 would be a terminating error.
                Assert.True(h.ExitCode is 0 or 1, "host exit " + h.ExitCode + ": " + stdout + h.StandardError.ReadToEnd());
                Assert.Contains("done", stdout);
                h.Dispose();
            }

            var text = File.ReadAllText(log.Path, Encoding.UTF8);
            Assert.EndsWith("\n", text);
            var lines = text.Split('\n')[..^1];
            // Every line of the shared machine log, other tests' included, is one whole record.
            Assert.All(lines, l => Assert.True(AuditRecord.FromJson(l) != null, "torn or merged line: " + (l.Length > 200 ? l[..200] + "..." : l)));
            var records = lines.Select(l => AuditRecord.FromJson(l)!).ToList();

            var refusals = records.Where(r => r.PatchId == id).ToList();
            Assert.Equal(processes * refusalsEach, refusals.Count);
            Assert.All(refusals, r => Assert.Equal("Refused NotSigned", r.Result + " " + r.ErrorId));
            var big = records.Where(r => r.PatchId == "HP-BIG-" + _run).ToList();
            Assert.Equal(threads * linesEach, big.Count);
            Assert.All(big, r => Assert.Equal(new string((char)('a' + r.ProcessId!.Value / 1000), bigField), r.Error));
            Assert.Equal(threads * linesEach, big.Select(r => r.ProcessId).Distinct().Count());
        }

        [Fact]
        public void Every_engine_install_and_uninstall_outcome_reaches_the_audit_sink_whoever_calls_the_engine()
        {
            using var t = TargetProcess.Start();
            var records = new List<AuditRecord>();
            var engine = new HotpatchEngine(options: new EngineOptions { Audit = records.Add });
            var good = PatchFiles.For(t, "T-AUDIT-" + _run, new PatchletSpec("triple", t.ReadSymbol("triple", 6), "mov eax, 7\nret"));
            var bad = PatchFiles.For(t, "T-AUDIT-BAD-" + _run, new PatchletSpec("triple", new byte[] { 0x90, 0x90, 0x90, 0x90, 0x90, 0x90 }));

            engine.Install(good, t.Pid);
            Assert.Throws<HotpatchException>(() => engine.Install(bad, t.Pid));
            engine.Uninstall(t.Pid, good.Id);
            Assert.Throws<HotpatchException>(() => engine.Uninstall(t.Pid, good.Id));

            Assert.Equal(new[] { "Install Installed ", "Install Refused ExpectMismatch", "Uninstall Removed ", "Uninstall Refused NotInstalled" },
                records.Select(r => r.Action + " " + r.Result + " " + r.ErrorId));
            Assert.All(records, r => Assert.Equal(t.Pid, r.ProcessId));
            Assert.Equal(good.FileSha256, records[0].FileSha256);
            Assert.Equal(good.FileSha256, records[2].FileSha256); // read back from the cave header
            Assert.Equal(t.ModuleName, records[0].Module);
            Assert.Equal("NotChecked", records[0].SignatureStatus); // parsed without the trust policy
            Assert.Contains("expect", records[1].Error);
        }

        [Fact]
        public void Targets_the_cmdlets_refuse_before_asking_the_engine_are_audited_too()
        {
            using var t = TargetProcess.Start();
            var id = "HP-PRECHECK-" + _run;
            var file = PatchFiles.WriteFile(_dir, id, PatchFiles.Yaml(id, t.ModuleName, new[] { new PatchletSpec("triple", new byte[] { 0x90, 0x90, 0x90, 0x90, 0x90, 0x90 }) }));
            using var sh = new ModuleShell();
            // Checked by Get-HotpatchTarget's inspection, refused before any confirmation: the engine never installs.
            sh.Run("Install-Micropatch -Path $args[0] -ProcessId $args[1], 1073741823 -AllowUnsigned -Force", file, t.Pid);
            Assert.Equal(new[] { "ExpectMismatch", "ProcessNotFound" }, sh.Errors.Select(e => e.FullyQualifiedErrorId.Split(',')[0]));
            sh.Run("Uninstall-Micropatch -PatchId $args[0] -ProcessId $args[1] -Force", id, t.Pid);
            Assert.StartsWith("NotInstalled", Assert.Single(sh.Errors).FullyQualifiedErrorId);

            var records = sh.Run("Get-MicropatchAuditLog -PatchId $args[0]", id)
                .Select(r => r.Properties["Action"].Value + " " + r.Properties["Result"].Value + " " + r.Properties["ErrorId"].Value + " " + r.Properties["ProcessId"].Value).ToArray();
            Assert.Equal(new[] { "Install Refused ExpectMismatch " + t.Pid, "Install Failed ProcessNotFound 1073741823", "Uninstall Refused NotInstalled " + t.Pid }, records);
        }

        [Fact]
        public void Each_record_also_goes_to_syslog_as_authpriv_tagged_hotpatchtools()
        {
            var socketPath = SystemLog.SyslogSocket;
            Assert.StartsWith(MachineRoot.Path, socketPath); // a redirected run never writes the real /dev/log
            Directory.CreateDirectory(Path.GetDirectoryName(socketPath)!);
            using var listener = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            if (File.Exists(socketPath)) File.Delete(socketPath);
            listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            try
            {
                var id = "HP-SYSLOG-" + _run;
                var file = PatchFiles.WriteFile(_dir, id, PatchFiles.Yaml(id, "libnothere.so", new[] { new PatchletSpec("f", new byte[] { 0x90, 0x90, 0x90, 0x90, 0x90 }) }));
                using (var sh = new ModuleShell())
                {
                    sh.Run("Install-Micropatch -Path $args[0] -Force", file);
                    Assert.StartsWith("NotSigned", Assert.Single(sh.Errors).FullyQualifiedErrorId);
                }
                listener.ReceiveTimeout = 5000;
                var buffer = new byte[65536];
                string? mine = null;
                while (mine == null)
                {
                    var message = Encoding.UTF8.GetString(buffer, 0, listener.Receive(buffer));
                    if (message.Contains(id)) mine = message;
                }
                // <84> = facility authpriv (10) * 8 + severity warning (4): a refusal.
                Assert.StartsWith("<84>hotpatchtools[" + Environment.ProcessId + "]: {", mine);
                var record = AuditRecord.FromJson(mine[(mine.IndexOf(": ", StringComparison.Ordinal) + 2)..]);
                Assert.NotNull(record);
                Assert.Equal("Refused NotSigned " + id, record!.Result + " " + record.ErrorId + " " + record.PatchId);
            }
            finally { File.Delete(socketPath); }
        }

        [Fact]
        [SupportedOSPlatform("linux")]
        public void A_log_that_others_could_edit_gets_no_more_records()
        {
            var log = new AuditLog(Path.Combine(_dir, "loose.jsonl"));
            log.Append(new AuditRecord { Action = AuditAction.Install, Result = AuditResult.Installed, PatchId = "HP-LOOSE-1" });
            File.SetUnixFileMode(log.Path, File.GetUnixFileMode(log.Path) | UnixFileMode.OtherWrite);
            var e = Assert.Throws<HotpatchException>(() => AuditTrail.Record(new AuditRecord { Action = AuditAction.Install, Result = AuditResult.Installed, PatchId = "HP-LOOSE-2" }, log));
            Assert.Equal(HotpatchErrorKind.AuditFailed, e.Kind);
            Assert.Contains("writable by group or others", e.Message);
            Assert.Equal(new[] { "HP-LOOSE-1" }, log.Read(out _).Select(r => r.PatchId));
        }

        [Fact]
        public void An_action_is_written_by_name_and_any_other_text_reads_back_and_is_written_again_unchanged()
        {
            foreach (var action in new[] { AuditAction.Install, AuditAction.Uninstall, AuditAction.AddTrustedPublisher, AuditAction.RemoveTrustedPublisher })
            {
                var json = new AuditRecord { Action = action, Result = AuditResult.Refused }.ToJson();
                Assert.Contains("\"action\":\"" + action + "\"", json);
                Assert.Equal(action, AuditRecord.FromJson(json)!.Action);
            }
            // A refusal before any work names the cmdlet; another version's log may hold what this one does not know.
            foreach (var text in new[] { "Install-Micropatch", "install", "7", "Install, Uninstall", "Other", "" })
            {
                var json = new AuditRecord { ActionName = text, Result = AuditResult.Refused }.ToJson();
                Assert.Contains("\"action\":\"" + text + "\"", json);
                var back = AuditRecord.FromJson(json)!;
                Assert.Equal(AuditAction.Other, back.Action);
                Assert.Equal(text, back.ActionName);
                Assert.Equal(json, back.ToJson());
            }
        }

        [Fact]
        public void A_record_is_one_line_whatever_its_fields_hold_and_reads_back_unchanged()
        {
            var nasty = "line1\nline2\r\t\"quoted\" back\\slash \u0001\u001f \u2028\u2029 \u0085 é 日本 \ud83d\ude00";
            var r = new AuditRecord { Action = AuditAction.Install, Result = AuditResult.Failed, PatchId = nasty, ProcessId = 42, Error = nasty, Path = "C:\\x\\y" };
            var json = r.ToJson();
            Assert.DoesNotContain(json, c => c < 0x20 || c == '\u2028' || c == '\u2029' || c == '\u0085');
            var back = AuditRecord.FromJson(json)!;
            Assert.Equal(nasty, back.PatchId);
            Assert.Equal(nasty, back.Error);
            Assert.Equal(42, back.ProcessId);
            Assert.Equal("C:\\x\\y", back.Path);
            Assert.Null(back.Signer);
            Assert.Equal(r.TimeUtc.ToString("yyyy-MM-ddTHH:mm:ss.fff"), back.TimeUtc.ToString("yyyy-MM-ddTHH:mm:ss.fff"));
            foreach (var broken in new[] { json[..^1], json + "x", "{\"time\":\"2026-01-01T00:00:00Z\",}", "[]", "", "{\"time\":\"x\"}" })
                Assert.Null(AuditRecord.FromJson(broken));
        }

        [Fact]
        public void Get_MicropatchAuditLog_filters_by_id_process_result_action_time_and_count()
        {
            var path = Path.Combine(_dir, "copied-audit.jsonl");
            var log = new AuditLog(path);
            var t0 = new DateTime(2026, 3, 1, 12, 0, 0, DateTimeKind.Utc);
            for (int i = 0; i < 10; i++)
                log.Append(new AuditRecord
                {
                    TimeUtc = t0.AddHours(i), Action = i % 2 == 0 ? AuditAction.Install : AuditAction.Uninstall, Result = i % 3 == 0 ? AuditResult.Refused : i % 2 == 0 ? AuditResult.Installed : AuditResult.Removed,
                    PatchId = i < 5 ? "HP-A-1" : "HP-B-2", ProcessId = 100 + i % 2, ErrorId = i % 3 == 0 ? "ExpectMismatch" : null,
                });
            File.AppendAllText(path, "not a record\n");

            using var sh = new ModuleShell();
            string[] Ids(string filters) =>
                sh.Run("Get-MicropatchAuditLog -Path $args[0] " + filters + " | ForEach-Object { $_.Time.ToUniversalTime().Hour }", path).Select(o => o.ToString()!).ToArray();

            Assert.Equal(new[] { "12", "13", "14", "15", "16", "17", "18", "19", "20", "21" }, Ids(""));
            Assert.Equal("HotpatchTools.MicropatchAuditRecord", sh.Run("Get-MicropatchAuditLog -Path $args[0] -Last 1", path).Single().TypeNames[0]);
            Assert.Equal(new[] { path + " has 1 line(s) that are not audit records; they were skipped." }, sh.Warnings);
            Assert.Equal(new[] { "17", "18", "19", "20", "21" }, Ids("-PatchId hp-b-*"));
            Assert.Equal(new[] { "13", "15", "17", "19", "21" }, Ids("-ProcessId 101"));
            Assert.Equal(new[] { "12", "15", "18", "21" }, Ids("-Result Refused"));
            Assert.Equal(new[] { "14", "16", "20" }, Ids("-Result Installed -Action Install"));
            Assert.Equal(new[] { "15", "16", "17" }, Ids("-After $args[1] -Before $args[2]".Replace("$args[1]", "([datetime]'2026-03-01T15:00:00Z')").Replace("$args[2]", "([datetime]'2026-03-01T17:00:00Z')")));
            Assert.Equal(new[] { "18", "21" }, Ids("-Result Refused -Last 2"));
            Assert.Empty(Ids("-PatchId HP-NONE"));

            sh.Run("Get-MicropatchAuditLog -Path $args[0]", Path.Combine(_dir, "missing.jsonl"));
            Assert.StartsWith("AuditLogNotFound", Assert.Single(sh.Errors).FullyQualifiedErrorId);
        }
    }
}
