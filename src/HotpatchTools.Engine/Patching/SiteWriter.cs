using System.Diagnostics;
using HotpatchTools.Engine.Platform;

namespace HotpatchTools.Engine.Patching
{
    /// <summary>One write of a freeze: the bytes to put at an address, and what to put back if a later write fails.</summary>
    internal sealed class SiteWrite
    {
        public SiteWrite(ulong address, byte[] bytes, byte[]? undo, string? failPoint = null)
        {
            Address = address;
            Bytes = bytes;
            Undo = undo;
            FailPoint = failPoint;
        }

        public ulong Address { get; }
        public byte[] Bytes { get; }
        /// <summary>Null for memory nothing reaches yet (a new cave): the caller frees it instead.</summary>
        public byte[]? Undo { get; }
        /// <summary>The test hook hit once this write is done.</summary>
        public string? FailPoint { get; }
    }

    /// <summary>What one freeze did: whether it wrote, how many threads it held and for how long.</summary>
    internal readonly struct FreezeOutcome
    {
        public FreezeOutcome(bool written, int threads, TimeSpan held) { Written = written; Threads = threads; Held = held; }
        public bool Written { get; }
        public int Threads { get; }
        /// <summary>The whole hold: from the first thread stopped to the last one released.</summary>
        public TimeSpan Held { get; }
    }

    /// <summary>
    /// The one place code in a live process is changed: every thread stopped, what the sites hold compared with what
    /// they must hold, then every write done and read back, or, on any failure, every write made undone (newest
    /// first) before the threads run again.
    /// </summary>
    internal static class SiteWriter
    {
        /// <param name="compare">Under the freeze: throws when a site holds something unexpected; returns the writes, or null to write nothing this time (a thread is in the way).</param>
        /// <param name="settle">Under the same freeze, after every write held: what follows from them (retiring caves, choosing what to free).</param>
        public static FreezeOutcome Write(ITargetProcess target, TimeSpan stopTimeout, Func<IFrozenProcess, IReadOnlyList<SiteWrite>?> compare, Action<IFrozenProcess> settle)
        {
            int threads;
            bool written = false;
            IFrozenProcess? hold;
            using (var frozen = target.Threads.Freeze(stopTimeout))
            {
                hold = frozen;
                threads = frozen.Threads.Count;
                var writes = compare(frozen);
                if (writes != null)
                {
                    WriteAll(target, writes);
                    settle(frozen);
                    written = true;
                }
            }
            // The hold as the threads felt it (first stop to last release), not the listing and attaching before it.
            return new FreezeOutcome(written, threads, hold.Held);
        }

        private static void WriteAll(ITargetProcess target, IReadOnlyList<SiteWrite> writes)
        {
            // Counted before the write: a write that fails half done is undone too.
            int begun = 0;
            try
            {
                foreach (var w in writes)
                {
                    begun++;
                    WriteVerified(target, w.Address, w.Bytes);
                    if (w.FailPoint != null) FailPoint.Hit(w.FailPoint);
                }
            }
            catch
            {
                for (int k = begun - 1; k >= 0; k--)
                {
                    var w = writes[k];
                    if (w.Undo == null) continue;
                    try { target.Memory.Write(w.Address, w.Undo); } catch (HotpatchException) { }
                }
                throw;
            }
        }

        private static void WriteVerified(ITargetProcess target, ulong address, byte[] bytes)
        {
            target.Memory.Write(address, bytes);
            var back = new byte[bytes.Length];
            target.Memory.Read(address, back);
            if (!back.SequenceEqual(bytes))
                throw new HotpatchException(HotpatchErrorKind.WriteFailed, "Bytes written at 0x" + address.ToString("x") + " in process " + target.Id + " did not read back as written.") { ProcessId = target.Id };
        }
    }
}
