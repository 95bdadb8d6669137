using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using System.Threading;

namespace HotpatchTools.Engine.Patching
{
    /// <summary>What one item of <see cref="HotpatchEngine.RunEach{TItem, TResult}"/> came to: a result, or the engine's refusal.</summary>
    public sealed class FleetOutcome<TItem, TResult> where TResult : class
    {
        internal FleetOutcome(TItem item, TResult? result, HotpatchException? error)
        {
            Item = item;
            Result = result;
            Error = error;
        }

        public TItem Item { get; }
        /// <summary>Null when the work failed, or when it had nothing to do for this item.</summary>
        public TResult? Result { get; }
        public HotpatchException? Error { get; }
    }

    /// <summary>
    /// What the engine tells its caller (log lines, warnings, audit records) while it works on a worker thread: kept
    /// per item and handed over on the thread that enumerates, just before the item's outcome. A caller such as a
    /// PowerShell cmdlet may only write from its own thread, and reads best in the order it asked.
    /// </summary>
    internal static class WorkerOutput
    {
        [ThreadStatic] private static List<(bool Audit, Action Deliver)>? _captured;

        public static void Emit(Action deliver, bool audit = false)
        {
            if (_captured != null) _captured.Add((audit, deliver));
            else deliver();
        }

        internal static List<(bool Audit, Action Deliver)>? Capture(List<(bool Audit, Action Deliver)>? into)
        {
            var before = _captured;
            _captured = into;
            return before;
        }
    }

    /// <summary>
    /// Runs work on items on a few threads and gives the outcomes back in the items' order. Each item's work runs whole
    /// on one thread (ptrace ties a stopped thread to the thread that stopped it, and every install and uninstall stops
    /// and releases within its call). Items are taken from the source on the enumerating thread, a few ahead.
    /// </summary>
    internal static class OrderedWorkers
    {
        private sealed class Job<TItem, TResult>
        {
            public TItem Item = default!;
            public TResult? Result;
            public Exception? Error;
            public bool Skipped;
            public readonly List<(bool Audit, Action Deliver)> Output = new List<(bool, Action)>();
            public readonly ManualResetEventSlim Done = new ManualResetEventSlim(false);
        }

        public static IEnumerable<FleetOutcome<TItem, TResult>> Run<TItem, TResult>(IEnumerable<TItem> items, Func<TItem, TResult?> work, int workers)
            where TResult : class
        {
            if (workers <= 0) workers = Environment.ProcessorCount;
            if (workers == 1)
            {
                foreach (var item in items)
                {
                    TResult? result = null;
                    HotpatchException? error = null;
                    try { result = work(item); }
                    catch (HotpatchException e) { error = e; }
                    yield return new FleetOutcome<TItem, TResult>(item, result, error);
                }
                yield break;
            }

            var queue = new BlockingCollection<Job<TItem, TResult>>();
            int stop = 0;
            var threads = new List<Thread>();
            var pending = new Queue<Job<TItem, TResult>>();
            var source = items.GetEnumerator();
            try
            {
                for (int i = 0; i < workers; i++)
                {
                    // Started from here, each worker carries the caller's execution context (debug directories, culture).
                    var t = new Thread(() =>
                    {
                        foreach (var job in queue.GetConsumingEnumerable())
                        {
                            if (Volatile.Read(ref stop) != 0) { job.Skipped = true; job.Done.Set(); continue; }
                            var before = WorkerOutput.Capture(job.Output);
                            try { job.Result = work(job.Item); }
                            catch (Exception e) { job.Error = e; }
                            finally
                            {
                                WorkerOutput.Capture(before);
                                job.Done.Set();
                            }
                        }
                    }) { IsBackground = true, Name = "HotpatchTools worker " + (i + 1) };
                    t.Start();
                    threads.Add(t);
                }

                bool more = true;
                while (true)
                {
                    // Enough ahead that no worker waits for the enumerating thread, few enough that a stop stops soon.
                    while (more && pending.Count < workers * 2)
                    {
                        if (!source.MoveNext()) { more = false; break; }
                        var job = new Job<TItem, TResult> { Item = source.Current };
                        pending.Enqueue(job);
                        queue.Add(job);
                    }
                    if (pending.Count == 0) break;
                    var head = pending.Peek();
                    head.Done.Wait();
                    pending.Dequeue();
                    head.Done.Dispose();
                    foreach (var o in head.Output) o.Deliver();
                    if (head.Error is HotpatchException he) yield return new FleetOutcome<TItem, TResult>(head.Item, null, he);
                    else if (head.Error != null) ExceptionDispatchInfo.Capture(head.Error).Throw();
                    else yield return new FleetOutcome<TItem, TResult>(head.Item, head.Result, null);
                }
            }
            finally
            {
                // Stopped early (an error, a stopped pipeline): nothing new starts, what runs ends, and what ended is audited.
                Volatile.Write(ref stop, 1);
                queue.CompleteAdding();
                foreach (var t in threads) t.Join();
                while (pending.Count > 0)
                {
                    var job = pending.Dequeue();
                    if (job.Skipped) continue;
                    foreach (var o in job.Output)
                        if (o.Audit)
                        {
                            try { o.Deliver(); }
                            catch (Exception) { /* the caller is going away; the record is written before any warning about it */ }
                        }
                }
                queue.Dispose();
                source.Dispose();
            }
        }
    }
}
