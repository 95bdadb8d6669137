using System.Runtime.Versioning;
namespace HotpatchTools.Tests
{
    /// <summary>
    /// Install-/Uninstall-Micropatch machine-wide without prompts, where the processes are worked on at once: results
    /// and errors in the sweep's order from the cmdlet's own thread, one process that cannot be patched reported alone;
    /// and with prompts, where each process is asked for and worked on before the next is asked.
    /// </summary>
    [SupportedOSPlatform("linux")]
    public sealed class FleetCmdletTests : IDisposable
    {
        private readonly ModuleShell _sh = new ModuleShell();
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-fleet-").FullName;
        private readonly List<TargetProcess> _targets = new List<TargetProcess>();

        public void Dispose()
        {
            _sh.Dispose();
            foreach (var t in _targets) t.Dispose();
            Directory.Delete(_dir, recursive: true);
        }

        /// <summary>Twelve copies of the test target under a name no other test uses: the sweep must reach only these.</summary>
        private void StartFleet(int count)
        {
            var exe = Path.Combine(_dir, "fleetcmd" + Environment.ProcessId);
            File.Copy(NativeBuild.Target, exe);
            File.Copy(NativeBuild.Target + ".syms", exe + ".syms");
            File.SetUnixFileMode(exe, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            for (int i = 0; i < count; i++) _targets.Add(TargetProcess.Start(exe));
        }

        [Fact]
        public void Without_prompts_every_process_is_patched_in_order_and_one_held_by_another_tracer_fails_alone()
        {
            StartFleet(12);
            var path = PatchFiles.Write(_dir, _targets[0], "HP-FLEET");
            var held = _targets[5];
            // Another tracer holds one process stopped for the whole install: that one is Busy, the others are not held up.
            System.Collections.ObjectModel.Collection<System.Management.Automation.PSObject> installed;
            using (new OtherTracer(held.Pid))
                installed = _sh.Run("Install-Micropatch -Path $args[0] -AllowUnsigned -Force -PassThru", path);
            var error = Assert.Single(_sh.Errors);
            Assert.StartsWith("Busy", error.FullyQualifiedErrorId);
            Assert.Equal(held.Pid, error.TargetObject);
            var others = _targets.Where(t => t != held).Select(t => t.Pid).OrderBy(p => p).ToList();
            Assert.Equal(others, installed.Select(o => (int)o.Properties["ProcessId"].Value));
            Assert.All(installed, o => Assert.Equal("Installed", o.Properties["Result"].Value));
            Assert.Contains(_sh.Warnings, w => w.Contains("installed in 11") && w.Contains("refused in 1"));
            foreach (var t in _targets)
            {
                Assert.Equal(t == held ? 1501 : -1, t.Call("triple", 500));
                Assert.Equal(t == held ? 0 : 1, t.CaveCount());
            }

            // -WhatIf goes one process after another and writes nothing.
            _sh.Run("Uninstall-Micropatch -PatchId HP-FLEET -WhatIf");
            Assert.Empty(_sh.Errors);
            Assert.All(_targets.Where(t => t != held), t => Assert.Equal(-1, t.Call("triple", 500)));

            var removed = _sh.Run("Uninstall-Micropatch -PatchId HP-FLEET -Confirm:$false -PassThru");
            Assert.Empty(_sh.Errors);
            Assert.Equal(others, removed.Select(o => (int)o.Properties["ProcessId"].Value));
            Assert.All(removed, o => Assert.Equal("Removed", o.Properties["Result"].Value));
            Assert.All(_targets, t => Assert.Equal(1501, t.Call("triple", 500)));
        }

        [Fact]
        public void With_prompts_each_process_is_asked_for_and_worked_on_before_the_next_is_asked()
        {
            StartFleet(3);
            var path = PatchFiles.Write(_dir, _targets[0], "HP-FLEET-ASK");
            var answers = new Queue<string>(new[] { "Yes", "No", "Yes" });
            var patchedWhenAsked = new List<int>();
            var host = new CaptureHost
            {
                AnswerChoice = (message, choices) =>
                {
                    patchedWhenAsked.Add(_targets.Count(t => t.Call("triple", 500) == -1));
                    return choices.Select(c => c.Label.Replace("&", "")).ToList().IndexOf(answers.Dequeue());
                },
            };
            using var sh = new ModuleShell(host);

            var installed = sh.Run("Install-Micropatch -Path $args[0] -AllowUnsigned -PassThru -Verbose", path);

            Assert.Empty(sh.Errors);
            Assert.Equal(new[] { 0, 1, 1 }, patchedWhenAsked);
            var sweep = _targets.OrderBy(t => t.Pid).ToList();
            Assert.Equal(new[] { sweep[0].Pid, sweep[2].Pid }, installed.Select(o => (int)o.Properties["ProcessId"].Value));
            Assert.Equal(new[] { -1, 1501, -1 }, sweep.Select(t => t.Call("triple", 500)));
            Assert.Contains(sh.Verbose, v => v.Contains("installed in 2") && v.Contains("not confirmed in 1"));

            // Removals are asked for the same way: the first is done before the second is asked.
            foreach (var answer in new[] { "Yes", "No" }) answers.Enqueue(answer);
            patchedWhenAsked.Clear();
            var removed = sh.Run("Uninstall-Micropatch -PatchId HP-FLEET-ASK -PassThru");
            Assert.Empty(sh.Errors);
            Assert.Equal(new[] { 2, 1 }, patchedWhenAsked);
            Assert.Equal(sweep[0].Pid, (int)Assert.Single(removed).Properties["ProcessId"].Value);
            Assert.Equal(new[] { 1501, 1501, -1 }, sweep.Select(t => t.Call("triple", 500)));
        }
    }
}