using System.Diagnostics;
using System.Reflection;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// tests/HotpatchTools.RemoteHost, the PSRP server of the remoting tests, serving one named pipe from a process
    /// of its own, so every call crosses a real process boundary and the real serializer.
    /// </summary>
    public sealed class PipeEndpoint : IDisposable
    {
        private readonly Process _process;

        /// <summary>The built host, in the configuration of this test assembly (the test project builds it first).</summary>
        public static string HostDll
        {
            get
            {
                string configuration = typeof(PipeEndpoint).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;
                var path = Path.Combine(ModuleShell.RepoRoot, "tests", "HotpatchTools.RemoteHost", "bin", configuration, "net10.0", "HotpatchTools.RemoteHost.dll");
                return File.Exists(path) ? path : throw new FileNotFoundException("the remote host is not built; building the test project builds it", path);
            }
        }

        /// <summary>Unix socket path: an absolute path keeps the socket, and the default PSHost pipe, out of the shared /tmp.</summary>
        public string PipeName { get; }

        public int ProcessId { get; }

        private readonly string _dir;

        public PipeEndpoint()
        {
            _dir = Directory.CreateTempSubdirectory("hpt-psrp-").FullName;
            PipeName = Path.Combine(_dir, "psrp");
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
            psi.ArgumentList.Add(HostDll);
            psi.ArgumentList.Add("-pipe");
            psi.ArgumentList.Add(PipeName);
            // A killed server leaves its socket files behind: they stay in this run's folder, deleted below.
            psi.Environment["TMPDIR"] = _dir;
            _process = Process.Start(psi)!;
            var ready = _process.StandardOutput.ReadLineAsync();
            if (!ready.Wait(TimeSpan.FromSeconds(60)) || ready.Result == null || !ready.Result.StartsWith("ready "))
            {
                Dispose();
                throw new InvalidOperationException("the remote host did not start: " + ready.Status);
            }
            ProcessId = _process.Id;
        }

        public void Dispose()
        {
            try { _process.StandardInput.Close(); } catch (IOException) { }
            if (!_process.WaitForExit(5000)) _process.Kill(entireProcessTree: true);
            _process.Dispose();
            try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
        }
    }
}
