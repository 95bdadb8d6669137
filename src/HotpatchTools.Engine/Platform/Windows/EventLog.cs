namespace HotpatchTools.Engine.Platform.Windows
{
    /// <summary>One event in the Application log, under an event source, with one insertion string.</summary>
    internal static class EventLog
    {
        public const ushort Warning = 2, Information = 4;

        /// <summary>False when the source cannot be opened or the event is not written.</summary>
        public static bool Report(string source, ushort type, uint eventId, string text)
        {
            var h = Win32.RegisterEventSourceW(null, source);
            if (h == IntPtr.Zero) return false;
            try { return Win32.ReportEventW(h, type, 0, eventId, IntPtr.Zero, 1, 0, new[] { text }, IntPtr.Zero); }
            finally { Win32.DeregisterEventSource(h); }
        }
    }
}
