using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// The systemd units and the Task Scheduler definitions in docs/: the PowerShell they run parses, and every
    /// HotpatchTools command in it binds to the real cmdlets' parameters (a renamed parameter breaks this test,
    /// not a fleet's enforcement). Neither systemd nor Task Scheduler runs here.
    /// </summary>
    public sealed class DeploymentFilesTests : IDisposable
    {
        private readonly ModuleShell _sh = new ModuleShell();

        public void Dispose() => _sh.Dispose();

        private static string Doc(string name) => Path.Combine(ModuleShell.RepoRoot, "docs", name);

        /// <summary>"Command:BindingErrors" for each command of the script that is one of ours, after binding it statically.</summary>
        private string[] Bind(string script)
        {
            var lines = _sh.Run(@"
                $errors = $null
                $ast = [System.Management.Automation.Language.Parser]::ParseInput($args[0], [ref]$null, [ref]$errors)
                if ($errors) { 'parse: ' + ($errors -join '; ') }
                $ast.FindAll({ param($a) $a -is [System.Management.Automation.Language.CommandAst] }, $true) |
                    Where-Object { $_.GetCommandName() -like '*-Micropatch*' } |
                    ForEach-Object {
                        $b = [System.Management.Automation.Language.StaticParameterBinder]::BindCommand($_, $true)
                        $_.GetCommandName() + ':' + (($b.BindingExceptions.Keys | ForEach-Object { $_ }) -join ',') + ':' + (($b.BoundParameters.Keys | ForEach-Object { $_ }) -join ',')
                    }", script).Select(o => o.ToString()).ToArray();
            Assert.Empty(_sh.Errors);
            return lines;
        }

        /// <summary>The -Command argument of a pwsh/powershell command line.</summary>
        private static string CommandArgument(string commandLine) =>
            Regex.Match(commandLine, "-Command \"(.*)\"\\s*$").Groups[1].Value;

        [Theory]
        [InlineData("hotpatchtools-enforce.service", "Sync-Micropatch::Force")]
        [InlineData("hotpatchtools-watch.service", "Sync-Micropatch::Watch,Force,Interval")]
        public void Systemd_units_run_a_command_the_module_accepts_with_dollars_escaped(string unit, string expected)
        {
            var execStart = File.ReadAllLines(Doc(unit)).Single(l => l.StartsWith("ExecStart=", StringComparison.Ordinal));
            // systemd expands $NAME itself; PowerShell's $ must be written $$.
            Assert.DoesNotMatch(new Regex(@"(?<!\$)\$(?!\$)"), execStart.Replace("$$", ""));
            var command = CommandArgument(execStart.Replace("$$", "$"));
            Assert.StartsWith("Import-Module HotpatchTools -ErrorAction Stop;", command);
            Assert.Equal(new[] { expected }, Bind(command));
            if (unit.Contains("watch")) Assert.Contains("KillSignal=SIGINT", File.ReadAllLines(Doc(unit)));
        }

        [Fact]
        public void The_binding_check_catches_a_misspelled_parameter()
        {
            Assert.Equal(new[] { "Sync-Micropatch:Wacht:Force" }, Bind("Import-Module HotpatchTools; Sync-Micropatch -Wacht -Force"));
        }

        [Fact]
        public void The_timer_starts_the_enforce_service_periodically()
        {
            var timer = File.ReadAllLines(Doc("hotpatchtools-enforce.timer"));
            Assert.Contains("OnUnitActiveSec=5min", timer);
            Assert.Contains("WantedBy=timers.target", timer);
            Assert.True(File.Exists(Doc("hotpatchtools-enforce.service")), "a timer starts the service of its own name");
        }

        [Fact]
        public void The_scheduled_task_runs_the_watch_as_SYSTEM_in_64_bit_PowerShell_without_a_time_limit()
        {
            XNamespace t = "http://schemas.microsoft.com/windows/2004/02/mit/task";
            var task = XDocument.Load(Doc("HotpatchTools-Watch.xml"));
            Assert.Equal("S-1-5-18", task.Descendants(t + "UserId").Single().Value);
            Assert.Equal("HighestAvailable", task.Descendants(t + "RunLevel").Single().Value);
            Assert.Equal("PT0S", task.Descendants(t + "ExecutionTimeLimit").Single().Value);
            Assert.Single(task.Descendants(t + "BootTrigger"));
            Assert.Equal(@"%SystemRoot%\System32\WindowsPowerShell\v1.0\powershell.exe", task.Descendants(t + "Command").Single().Value);
            var command = CommandArgument(task.Descendants(t + "Arguments").Single().Value);
            Assert.Equal(new[] { "Sync-Micropatch::Watch,Force,Interval" }, Bind(command));
        }

        [Fact]
        public void The_task_registration_script_parses_and_its_commands_bind()
        {
            var script = File.ReadAllText(Doc("Register-HotpatchToolsTasks.ps1"));
            Assert.DoesNotContain(Bind(script), l => l.StartsWith("parse:", StringComparison.Ordinal));
            // The commands are inside the task arguments as text: check them like the unit's.
            var commands = Regex.Matches(script, "`\"(Import-Module HotpatchTools[^`]*)`\"").Select(m => m.Groups[1].Value.Replace("$interval", "2")).ToArray();
            Assert.Equal(2, commands.Length);
            Assert.Equal(new[] { "Sync-Micropatch::Force" }, Bind(commands[0]));
            Assert.Equal(new[] { "Sync-Micropatch::Watch,Force,Interval" }, Bind(commands[1]));
        }
    }
}
