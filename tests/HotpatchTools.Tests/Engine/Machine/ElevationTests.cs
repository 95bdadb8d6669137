using System.Globalization;
using System.Runtime.Versioning;
using HotpatchTools.Engine.Machine;

namespace HotpatchTools.Tests
{
    /// <summary>The privilege check, decided on real effective uids and exercised by a real unprivileged process.</summary>
    public sealed class ElevationTests
    {
        [Fact]
        public void Only_an_effective_uid_of_0_counts_as_elevated()
        {
            Assert.True(Privilege.IsElevatedEuid(0));
            Assert.False(Privilege.IsElevatedEuid(1000));
            Assert.False(Privilege.IsElevatedEuid(65534));
            Assert.Equal(Engine.Platform.Linux.LibC.geteuid() == 0, Privilege.IsElevated());
        }

        [Fact]
        [SupportedOSPlatform("linux")]
        public void A_session_that_is_not_root_gets_a_terminating_NotElevated_error_before_anything_is_touched()
        {
            Assert.True(Engine.Platform.Linux.LibC.geteuid() == 0, "this test runs as root (it runs the module as an unprivileged user)");
            using var t = TargetProcess.Start();
            var before = t.ReadSymbol("triple", 6);
            // Readable by the unprivileged user: had the command looked at the file or the process first, it could have.
            var file = Path.Combine(PowerShellProcess.Folder, "HP-NOPRIV-" + Guid.NewGuid().ToString("n")[..8] + ".micropatch.yaml");
            var id = Path.GetFileName(file).Split('.')[0];
            File.WriteAllText(file, PatchFiles.Yaml(id, t.ModuleName,
                new[] { new PatchletSpec("triple", before, "mov eax, 7\nret") }));
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            const string script = @"
                Import-Module -Name $args[0] -ErrorAction Stop
                $file = $args[1]; $target = $args[2]; $id = $args[3]
                function Attempt($name, [scriptblock]$command) {
                    # -ErrorAction SilentlyContinue hides non-terminating errors only: a terminating one still reaches catch.
                    try { & $command; $name + ' went on' }
                    catch { $name + ' stopped ' + $_.FullyQualifiedErrorId.Split(',')[0] + ' ' + $_.CategoryInfo.Category + ' ' + $_.Exception.Message }
                }
                Attempt 'install' { Install-Micropatch -Path $file -ProcessId $target -AllowUnsigned -Force -ErrorAction SilentlyContinue }
                Attempt 'uninstall' { Uninstall-Micropatch -PatchId $id -ProcessId $target -Force -ErrorAction SilentlyContinue }
                Attempt 'trust' { Add-MicropatchTrustedPublisher -Thumbprint ('A' * 40) -Force -ErrorAction SilentlyContinue }
                Attempt 'distrust' { Remove-MicropatchTrustedPublisher -Thumbprint ('A' * 40) -Force -ErrorAction SilentlyContinue }
                Attempt 'register' { Register-Micropatch -Path $file -AllowUnsigned -Force -ErrorAction SilentlyContinue }
                Attempt 'sync' { Sync-Micropatch -Force -ErrorAction SilentlyContinue }
                # Reading needs no elevation.
                'signature ' + (Get-MicropatchSignature -Path $file -ErrorAction SilentlyContinue).Status";
            try
            {
                var (exit, lines, stderr) = PowerShellProcess.Run("setpriv --reuid=65534 --regid=65534 --clear-groups", script, file, t.Pid.ToString(CultureInfo.InvariantCulture), id);
                var outcome = string.Join("\n", lines) + "\n" + stderr;
                foreach (var name in new[] { "install", "uninstall", "trust", "distrust", "register", "sync" })
                {
                    var line = Assert.Single(lines, l => l.StartsWith(name + " ", StringComparison.Ordinal));
                    Assert.True(line.StartsWith(name + " stopped NotElevated PermissionDenied ", StringComparison.Ordinal), outcome);
                    Assert.Contains("needs an elevated session", line);
                    Assert.Contains("Nothing was changed", line);
                }
                Assert.Contains("signature NotSigned", lines);
                Assert.Equal(before, t.ReadSymbol("triple", 6));
                Assert.Equal(0, t.CaveCount());
                Assert.Equal(1501, t.Call("triple", 500));
            }
            finally { File.Delete(file); }
        }

        [Fact]
        [SupportedOSPlatform("linux")]
        public void A_session_that_is_not_root_is_told_why_Get_HotpatchTarget_shows_nothing()
        {
            Assert.True(Engine.Platform.Linux.LibC.geteuid() == 0, "this test runs as root (it runs the module as an unprivileged user)");
            using var t = TargetProcess.Start();
            var file = Path.Combine(PowerShellProcess.Folder, "HP-NOPRIV-" + Guid.NewGuid().ToString("n")[..8] + ".micropatch.yaml");
            var id = Path.GetFileName(file).Split('.')[0];
            File.WriteAllText(file, PatchFiles.Yaml(id, t.ModuleName, new[] { new PatchletSpec("triple", t.ReadSymbol("triple", 6)) }));
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            const string script = @"
                Import-Module -Name $args[0] -ErrorAction Stop
                $found = Get-HotpatchTarget -Path $args[1] -WarningVariable w -WarningAction SilentlyContinue -Verbose 4>&1
                'shown ' + @($found | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }).Count
                'warning ' + $w[0].Message
                $found | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object { 'verbose ' + $_.Message }";
            try
            {
                var (_, lines, stderr) = PowerShellProcess.Run("setpriv --reuid=65534 --regid=65534 --clear-groups", script, file);
                var outcome = string.Join("\n", lines) + "\n" + stderr;
                Assert.True(lines.Contains("shown 0"), outcome);
                Assert.True(lines.Any(l => l.StartsWith("warning ", StringComparison.Ordinal) && l.Contains("could not be read (not elevated")), outcome);
                Assert.True(lines.Any(l => l.StartsWith("verbose could not read: ", StringComparison.Ordinal) && l.Contains(" " + t.Pid + " (")), outcome);
            }
            finally { File.Delete(file); }
        }
    }
}
