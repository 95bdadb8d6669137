using System.Reflection;
using System.Threading;

namespace HotpatchTools.Engine.Platform.Linux
{
    /// <summary>
    /// When the target is a child of this process, the .NET runtime reaps it from its SIGCHLD handling
    /// (ProcessWaitState.CheckChildren), and a waitpid there also returns ptrace stops: the runtime would take
    /// our stop notification and record the child as exited, after which Process.Kill silently does nothing.
    /// CheckChildren does all its reaping under a lock on its table of children; holding that lock while the
    /// child's threads are held makes it wait until every stop is ours and consumed.
    /// </summary>
    internal static class ChildReapGuard
    {
        private static readonly object? RuntimeReapLock =
            typeof(System.Diagnostics.Process).Assembly.GetType("System.Diagnostics.ProcessWaitState")
                ?.GetField("s_childProcessWaitStates", BindingFlags.NonPublic | BindingFlags.Static)
                ?.GetValue(null);

        /// <summary>Holds off the runtime's reaping of our children. Must be disposed on the thread that entered.</summary>
        public static IDisposable? Enter()
        {
            if (RuntimeReapLock == null) return null;
            Monitor.Enter(RuntimeReapLock);
            return new Releaser();
        }

        private sealed class Releaser : IDisposable
        {
            private bool _done;

            public void Dispose()
            {
                if (_done) return;
                _done = true;
                Monitor.Exit(RuntimeReapLock!);
            }
        }
    }
}
