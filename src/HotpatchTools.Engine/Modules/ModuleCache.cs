namespace HotpatchTools.Engine.Modules
{
    /// <summary>
    /// Parsed module images and file hashes keyed by file identity: a machine-wide scan opens the same
    /// libc in every process, and parsing it once is what keeps discovery close to reading /proc.
    /// </summary>
    internal static class ModuleCache
    {
        private const int Capacity = 512;
        private static readonly Dictionary<string, object> Entries = new Dictionary<string, object>(StringComparer.Ordinal);
        private static readonly Queue<string> Order = new Queue<string>();

        public static T GetOrAdd<T>(string key, Func<T> create) where T : class
        {
            lock (Entries)
            {
                if (Entries.TryGetValue(key, out var hit)) return (T)hit;
            }
            var value = create();
            lock (Entries)
            {
                if (Entries.TryGetValue(key, out var raced)) return (T)raced;
                Entries[key] = value;
                Order.Enqueue(key);
                while (Order.Count > Capacity) Entries.Remove(Order.Dequeue());
                return value;
            }
        }
    }
}
