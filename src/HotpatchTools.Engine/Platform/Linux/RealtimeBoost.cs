namespace HotpatchTools.Engine.Platform.Linux
{
    /// <summary>
    /// Runs the calling thread at the lowest real-time priority while it holds a target's threads. With many busy
    /// threads on few cores, the target's own threads otherwise take the CPU from the tracer between two calls,
    /// and every thread already stopped waits for the ones still running (256 threads on 2 cores: 100+ ms instead
    /// of a few). The boosted thread never spins: a real-time thread polling for a stop with yields could keep the
    /// very threads it waits for off the CPU, so it sleeps between looks. Without the privilege it is a no-op.
    /// </summary>
    internal sealed class RealtimeBoost : IDisposable
    {
        private readonly int _policy, _priority;

        private RealtimeBoost(int policy, int priority) { _policy = policy; _priority = priority; }

        public static IDisposable? Enter()
        {
            int policy = LibC.sched_getscheduler(0);
            if (policy != LibC.SCHED_OTHER || LibC.sched_getparam(0, out int priority) != 0) return null;
            int fifo = 1;
            return LibC.sched_setscheduler(0, LibC.SCHED_FIFO, ref fifo) == 0 ? new RealtimeBoost(policy, priority) : null;
        }

        public void Dispose()
        {
            int priority = _priority;
            LibC.sched_setscheduler(0, _policy, ref priority);
        }
    }
}
