using System.Threading;

namespace HotpatchTools.Engine.Platform
{
    /// <summary>
    /// Tells a watching enforcer, as it happens, which processes may have new code: a program started, or a
    /// watched module file opened (the loader or dlopen opens it right before mapping it). Polling stays the
    /// fallback: an event source may miss what it was not told to watch.
    /// </summary>
    internal interface IProcessEvents : IDisposable
    {
        /// <summary>What the events come from, for the log (for example "proc connector, fanotify on 3 files").</summary>
        string Description { get; }

        /// <summary>
        /// Report the processes that open these modules: the files given (seen mapped), and where the platform's
        /// loader looks for a module of that name.
        /// </summary>
        void WatchModules(IEnumerable<string> moduleNames, IEnumerable<string> knownPaths);

        /// <summary>Waits until an event arrives or the timeout passes; then returns every process reported so far (none on timeout).</summary>
        IReadOnlyCollection<ProcessEvent> Wait(TimeSpan timeout, CancellationToken cancel);
    }

    internal enum ProcessEventKind
    {
        /// <summary>The process started a new program (exec): its main executable is mapped, its libraries follow.</summary>
        Started,
        /// <summary>The process opened a watched module file: its mapping follows within moments.</summary>
        OpenedModule,
    }

    internal static class ProcessEventLimits
    {
        /// <summary>
        /// Processes an event source holds for <see cref="IProcessEvents.Wait"/> at most: a flood of starts must not grow
        /// memory without bound; what is dropped waits for the watch's next pass.
        /// </summary>
        public const int MaxPending = 4096;
    }

    internal readonly struct ProcessEvent
    {
        public ProcessEvent(int processId, ProcessEventKind kind)
        {
            ProcessId = processId;
            Kind = kind;
        }

        public int ProcessId { get; }
        public ProcessEventKind Kind { get; }
    }

    /// <summary>A platform that can report process events; null from <see cref="OpenEvents"/> where they are unavailable (then the watch polls).</summary>
    internal interface IProcessEventPlatform
    {
        IProcessEvents? OpenEvents(Action<string>? log);
    }
}
