using System;
using System.Management.Automation.Remoting;
using System.Reflection;

namespace HotpatchTools.RemoteHost
{
    /// <summary>
    /// A PowerShell remoting endpoint with nothing but System.Management.Automation, so the module can be
    /// tested over real PSRP where pwsh itself is not installed.
    ///   -pipe NAME   serve PSRP on the named pipe NAME (a Unix socket) until stdin closes
    ///   -sshs / -s   serve PSRP over stdin/stdout, as pwsh does for an sshd subsystem (-sshs) or a job (-s)
    ///   -check       print the reflected server entry point and exit 0, or exit 1 when this SMA has none
    /// </summary>
    public static class Program
    {
        public static int Main(string[] args)
        {
            if (args.Length >= 2 && args[0] == "-pipe")
            {
                RemoteSessionNamedPipeServer.CreateCustomNamedPipeServer(args[1]);
                // The test waits for this line before it connects.
                Console.WriteLine("ready " + Environment.ProcessId);
                Console.Out.Flush();
                // The test owns our lifetime through stdin: closing it (or dying) ends the server.
                Console.In.ReadToEnd();
                return 0;
            }
            if (args.Length == 1 && args[0] == "-check")
            {
                try
                {
                    var run = StdioRunMethod();
                    Console.WriteLine(typeof(RemoteSessionNamedPipeServer).Assembly.GetName().Version + " " + run.DeclaringType!.FullName + "." + run.Name
                        + "(" + string.Join(", ", Array.ConvertAll(run.GetParameters(), p => p.ParameterType.Name + " " + p.Name)) + ")");
                    return 0;
                }
                catch (Exception e)
                {
                    Console.Error.WriteLine(e.Message);
                    return 1;
                }
            }
            foreach (var a in args)
            {
                if (a.Equals("-sshs", StringComparison.OrdinalIgnoreCase) || a.Equals("-s", StringComparison.OrdinalIgnoreCase))
                {
                    // sshd merges nothing for us: pwsh's SSH server mode combines error output into the PSRP stream too.
                    RunStdio(combineErrOutStream: a.Equals("-sshs", StringComparison.OrdinalIgnoreCase));
                    return 0;
                }
            }
            Console.Error.WriteLine("usage: HotpatchTools.RemoteHost -pipe NAME | -sshs | -s");
            return 2;
        }

        /// <summary>
        /// pwsh's own server mode: the internal StdIOProcessMediator.Run. There is no public API for it; the
        /// signature checked here is guarded by a test (RemoteHostTests) so an SMA upgrade fails loudly.
        /// </summary>
        public static MethodInfo StdioRunMethod()
        {
            var type = typeof(RemoteSessionNamedPipeServer).Assembly.GetType("System.Management.Automation.Remoting.Server.StdIOProcessMediator", throwOnError: true)!;
            var run = type.GetMethod("Run", BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)
                ?? throw new MissingMethodException(type.FullName, "Run");
            var p = run.GetParameters();
            if (p.Length != 5 || p[0].ParameterType != typeof(string) || p[1].ParameterType != typeof(string) || p[2].ParameterType != typeof(string)
                || p[3].ParameterType != typeof(string) || p[4].ParameterType != typeof(bool))
                throw new MissingMethodException(type.FullName + ".Run(string initialCommand, string workingDirectory, string configurationName, string configurationFile, bool combineErrOutStream) changed: " + run);
            return run;
        }

        private static void RunStdio(bool combineErrOutStream)
        {
            // No working directory: SMA would apply it with Set-Location, which is not among the core commands a
            // host of SMA alone has, and the session would break. sshd already starts us in the user's home.
            StdioRunMethod().Invoke(null, new object?[] { null, null, null, null, combineErrOutStream });
        }
    }
}
