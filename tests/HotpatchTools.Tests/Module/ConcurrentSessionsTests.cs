using System.Globalization;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// Two admins at once (Linux): several PowerShell processes install and remove the same and different patches in
    /// one target whose threads run through the patched functions all the while. A stale unmap from one session used
    /// to remove the cave another had just mapped at the same address, and the target crashed within seconds.
    /// </summary>
    public sealed class ConcurrentSessionsTests : IDisposable
    {
        private const int Seconds = 40;
        private readonly TargetProcess _t = TargetProcess.Start();
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-sessions-").FullName;

        public void Dispose()
        {
            _t.Dispose();
            Directory.Delete(_dir, recursive: true);
        }

        private string Patch(string id, string at, int expect, string code = "") =>
            PatchFiles.WriteFile(_dir, id, PatchFiles.Yaml(id, _t.ModuleName, new[] { new PatchletSpec(at, _t.ReadSymbol(at, expect), code) }));

        // Loops until the deadline; prints its successes and one count per ErrorId. A terminating error ends it (and the test).
        private const string Loop = @"
Import-Module -Name $args[0] -ErrorAction Stop
$file = $args[1]; $target = [int]$args[2]; $id = $args[3]; $until = [datetime]::UtcNow.AddSeconds([int]$args[4])
$installed = 0; $removed = 0; $errors = @{}
function Count($list) { foreach ($x in $list) { $k = $x.FullyQualifiedErrorId.Split(',')[0]; $errors[$k] = 1 + [int]$errors[$k] } }
while ([datetime]::UtcNow -lt $until) {
    $e = $null
    Install-Micropatch -Path $file -ProcessId $target -AllowUnsigned -Force -ErrorAction SilentlyContinue -ErrorVariable e | Out-Null
    if ($e) { Count $e } else { $installed++ }
    $e = $null
    Uninstall-Micropatch -ProcessId $target -PatchId $id -Force -ErrorAction SilentlyContinue -ErrorVariable e -WarningAction SilentlyContinue | Out-Null
    if ($e) { Count $e } else { $removed++ }
}
'installed ' + $installed
'removed ' + $removed
foreach ($k in $errors.Keys) { 'errors ' + $k + ' ' + $errors[$k] }
";

        [Fact]
        public async System.Threading.Tasks.Task Sessions_in_four_processes_installing_and_removing_in_one_hammered_target_never_crash_it()
        {
            const string guard = "cmp edi, 100000\njbe resume\nmov eax, -1\nret";
            var shared = Patch("T-SESS-SHARED", "triple", 6, guard);
            var originals = new[] { "triple", "short_jcc", "rip_first" }.Select(s => _t.ReadSymbol(s, 8)).ToArray();
            var sessions = new[]
            {
                (File: shared, Id: "T-SESS-SHARED"),
                (File: shared, Id: "T-SESS-SHARED"),
                (File: Patch("T-SESS-JCC", "short_jcc", 7), Id: "T-SESS-JCC"),
                (File: Patch("T-SESS-RIP", "rip_first", 6), Id: "T-SESS-RIP"),
            };
            Assert.Equal("ok", _t.Send("hammer 4"));
            var hosts = sessions.Select(s => PowerShellProcess.Start("", Loop, s.File, _t.Pid.ToString(CultureInfo.InvariantCulture), s.Id, Seconds.ToString(CultureInfo.InvariantCulture))).ToList();
            var outputs = new List<string[]>();
            try
            {
                foreach (var h in hosts)
                {
                    var stdout = h.StandardOutput.ReadToEndAsync();
                    var stderr = h.StandardError.ReadToEndAsync();
                    Assert.True(h.WaitForExit((Seconds + 120) * 1000), "a PowerShell session hung");
                    string output = await stdout, error = await stderr;
                    var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
                    Assert.True(lines.Any(l => l.StartsWith("installed ", StringComparison.Ordinal)), "session ended early: " + output + error);
                    outputs.Add(lines);
                }
            }
            finally
            {
                foreach (var h in hosts) { if (!h.HasExited) h.Kill(entireProcessTree: true); h.Dispose(); }
            }

            var report = string.Join(" | ", outputs.Select(o => string.Join(", ", o)));
            Assert.True(_t.IsAlive, "the target died: " + report);
            var (calls, errors) = _t.Stats();
            Assert.Equal(0, errors); // every call returned what the original function returns
            Assert.True(calls > 0);
            Assert.DoesNotContain('t', _t.ThreadStates());
            // Each session got work done, and failed only because another session had just done the same.
            foreach (var o in outputs)
            {
                Assert.True(Count(o, "installed ") > 0 && Count(o, "removed ") > 0, report);
                foreach (var line in o.Where(l => l.StartsWith("errors ", StringComparison.Ordinal)))
                    Assert.True(line.StartsWith("errors AlreadyInstalled ", StringComparison.Ordinal) || line.StartsWith("errors NotInstalled ", StringComparison.Ordinal)
                                || line.StartsWith("errors ThreadInSpan ", StringComparison.Ordinal), report);
            }
            // Every patch is out again, and the target still runs its own code.
            Assert.Equal("ok", _t.Send("calm"));
            Assert.Equal(originals, new[] { "triple", "short_jcc", "rip_first" }.Select(s => _t.ReadSymbol(s, 8)).ToArray());
            Assert.Equal(16, _t.Call("triple", 5));
        }

        private static int Count(string[] lines, string prefix) =>
            lines.Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).Select(l => int.Parse(l.Substring(prefix.Length), CultureInfo.InvariantCulture)).Sum();
    }
}
