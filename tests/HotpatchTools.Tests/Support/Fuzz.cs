using System;
using System.Globalization;
using System.Threading.Tasks;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// Sizes of the fuzz runs. CI runs a short, fixed-seed pass of each fuzzer; a long run is
    /// `HOTPATCHTOOLS_FUZZ_CASES=100000 dotnet test -c Release --filter Category=Fuzz` (optionally with
    /// HOTPATCHTOOLS_FUZZ_SEED=n for other inputs). Every failing input is printed or saved, so it can be replayed.
    /// </summary>
    public static class Fuzz
    {
        public const string Category = "Fuzz";

        public static int Cases(int short_) =>
            int.TryParse(Environment.GetEnvironmentVariable("HOTPATCHTOOLS_FUZZ_CASES"), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : short_;

        public static int Seed(int fixedSeed) =>
            int.TryParse(Environment.GetEnvironmentVariable("HOTPATCHTOOLS_FUZZ_SEED"), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int s) ? s : fixedSeed;

        /// <summary>A hang is a failure too: each case gets a generous share of time, never less than two minutes in all.</summary>
        public static TimeSpan Budget(int cases, double msPerCase = 5) => TimeSpan.FromMilliseconds(Math.Max(120_000, cases * msPerCase));

        public static async Task Run(int cases, Action<int> oneCase, double msPerCase = 5)
        {
            var work = Task.Run(() => { for (int i = 0; i < cases; i++) oneCase(i); });
            await work.WaitAsync(Budget(cases, msPerCase));
        }
    }
}
