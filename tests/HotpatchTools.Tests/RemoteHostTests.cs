using System.Reflection;
using HotpatchTools.Tests.Remoting;
using Xunit;

namespace HotpatchTools.Tests
{
    public sealed class RemoteHostTests
    {
        [Fact]
        public void The_ssh_subsystem_mode_still_finds_SMAs_internal_StdIOProcessMediator_Run_with_five_parameters()
        {
            // The host calls an internal method by reflection (there is no public API for pwsh's -sshs mode): an SMA
            // upgrade that changes it must fail here, not as a hung SSH session.
            var host = Assembly.LoadFrom(PipeEndpoint.HostDll.Replace(".dll", ".dll"));
            var run = (MethodInfo)host.GetType("HotpatchTools.RemoteHost.Program", throwOnError: true)!.GetMethod("StdioRunMethod")!.Invoke(null, null)!;
            Assert.Equal(new[] { "initialCommand", "workingDirectory", "configurationName", "configurationFile", "combineErrOutStream" },
                System.Array.ConvertAll(run.GetParameters(), p => p.Name));
            Assert.True(run.IsStatic);
        }
    }
}
