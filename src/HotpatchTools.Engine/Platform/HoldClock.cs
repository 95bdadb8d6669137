using System.Diagnostics;

namespace HotpatchTools.Engine.Platform
{
    /// <summary>
    /// The hold a frozen process's threads feel: from the first thread stopped to the last one let go (up to now while
    /// still held). Each backend marks the two moments where its own stop and release happen.
    /// </summary>
    internal struct HoldClock
    {
        // Stopwatch timestamps; 0 until it happened.
        private long _firstStop, _lastRelease;

        /// <summary>The first stop; later calls keep it.</summary>
        public void Stopping()
        {
            if (_firstStop == 0) _firstStop = Stopwatch.GetTimestamp();
        }

        public void Released() => _lastRelease = Stopwatch.GetTimestamp();

        public TimeSpan Held =>
            _firstStop == 0 ? TimeSpan.Zero
                : TimeSpan.FromSeconds(((_lastRelease != 0 ? _lastRelease : Stopwatch.GetTimestamp()) - _firstStop) / (double)Stopwatch.Frequency);
    }
}
