using System.Diagnostics;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// A target that is a direct child of the patching process: the .NET runtime reaps its own children on
    /// SIGCHLD, and ptrace stops raise SIGCHLD too. Patching must neither hang nor make .NET think it exited.
    /// </summary>
    public sealed class ChildTargetTests
    {
        [Fact]
        public void Patching_a_child_process_neither_hangs_nor_looks_like_an_exit()
        {
            var psi = new ProcessStartInfo(NativeBuild.Target) { RedirectStandardInput = true, RedirectStandardOutput = true };
            using var child = Process.Start(psi)!;
            try
            {
                Assert.StartsWith("ready", child.StandardOutput.ReadLine());
                var nm = NativeBuild.Run("nm", "--defined-only", NativeBuild.Target);
                var engine = new HotpatchEngine();
                string yaml = null!;
                using (var probe = new FileStream("/proc/" + child.Id + "/mem", FileMode.Open, FileAccess.Read))
                {
                    ulong site = 0;
                    foreach (var line in File.ReadAllLines("/proc/" + child.Id + "/maps"))
                        if (line.EndsWith(NativeBuild.Target)) { site = Convert.ToUInt64(line[..line.IndexOf('-')], 16); break; }
                    foreach (var l in nm.Split('\n'))
                        if (l.EndsWith(" triple")) site += Convert.ToUInt64(l[..16], 16);
                    probe.Seek((long)site, SeekOrigin.Begin);
                    var expect = new byte[6];
                    probe.ReadExactly(expect);
                    yaml = PatchFiles.Yaml("T-CHILD", Path.GetFileName(NativeBuild.Target), new[] { new PatchletSpec("triple", expect, "mov eax, 7\nret") });
                }
                var patch = PatchFiles.Parse(yaml);
                for (int i = 0; i < 50; i++)
                {
                    engine.Install(patch, child.Id);
                    child.StandardInput.WriteLine("call triple 5");
                    Assert.Equal("7", child.StandardOutput.ReadLine());
                    engine.Uninstall(child.Id, "T-CHILD");
                    child.StandardInput.WriteLine("call triple 5");
                    Assert.Equal("16", child.StandardOutput.ReadLine());
                }
                Assert.False(child.HasExited);
                // The runtime still owns its child: a kill is seen as the exit it is.
                child.Kill();
                Assert.True(child.WaitForExit(5000));
                Assert.Equal(137, child.ExitCode);
            }
            finally
            {
                if (!child.HasExited) child.Kill();
            }
        }
    }
}
