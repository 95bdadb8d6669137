using System.Runtime.ExceptionServices;
using System.Threading;
using HotpatchTools.Engine.Platform.Linux;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// Another tracer of a Linux process: from the start until disposed, an OS thread of its own (ptrace binds a
    /// tracee to the thread that attached) holds every thread of the process stopped.
    /// </summary>
    internal sealed class OtherTracer : IDisposable
    {
        private readonly ManualResetEventSlim _release = new ManualResetEventSlim();
        private readonly Thread _thread;

        public OtherTracer(int pid)
        {
            using var holding = new ManualResetEventSlim();
            ExceptionDispatchInfo? failed = null;
            _thread = new Thread(() =>
            {
                try
                {
                    using var other = new LinuxPlatform().Open(pid);
                    using var frozen = other.Threads.Freeze(TimeSpan.FromSeconds(5));
                    holding.Set();
                    _release.Wait();
                }
                catch (Exception e)
                {
                    // Told to the test rather than left to hang it: the caller waits for the hold below.
                    failed = ExceptionDispatchInfo.Capture(e);
                    holding.Set();
                }
            });
            _thread.Start();
            holding.Wait();
            failed?.Throw();
        }

        public void Dispose()
        {
            _release.Set();
            _thread.Join();
            _release.Dispose();
        }
    }
}
