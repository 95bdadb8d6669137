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

        /// <summary>
        /// A reader's fuzz run: each case's input (by case number) is read or refused with <typeparamref name="TRefusal"/> (which
        /// <paramref name="checkRefusal"/> may examine); anything else fails the test, naming the case and, through
        /// <paramref name="keep"/>, where its input can be found again. Returns how many were read and how many refused.
        /// </summary>
        public static async Task<(int Parsed, int Refused)> ParseOrRefuse<TRefusal>(int cases, Func<int, byte[]> input, Action<int, byte[]> parse,
            Func<int, byte[], string> keep, Action<TRefusal>? checkRefusal = null) where TRefusal : Exception
        {
            int parsed = 0, refused = 0;
            await Run(cases, iteration =>
            {
                var bytes = input(iteration);
                try
                {
                    parse(iteration, bytes);
                    parsed++;
                }
                catch (TRefusal e)
                {
                    checkRefusal?.Invoke(e);
                    refused++;
                }
                catch (Exception e)
                {
                    Assert.Fail("iteration " + iteration + " (" + keep(iteration, bytes) + "): " + e);
                }
            });
            return (parsed, refused);
        }

        /// <summary>Keeps a failing binary input in the temp folder for replay, and says where.</summary>
        public static string SaveInput(string name, int iteration, byte[] bytes, string extension)
        {
            var path = Path.Combine(Path.GetTempPath(), name + "-fuzz-failure-" + iteration + extension);
            File.WriteAllBytes(path, bytes);
            return "input saved as " + path;
        }

        /// <summary>
        /// A binary file changed in 1 to <paramref name="maxEdits"/> places, each chosen by <paramref name="pick"/> (from
        /// the length so far; a fuzzer aims most edits where a wrong byte changes what the reader does): a bit flipped, a
        /// byte replaced, a little-endian field of <paramref name="wordSize"/> bytes set to an edge value (all ones, a
        /// random number, a small one, 2^k-1), or the file cut short.
        /// </summary>
        public static byte[] Mutate(byte[] original, Random rng, int maxEdits, Func<Random, int, int> pick, int wordSize)
        {
            var bytes = (byte[])original.Clone();
            int length = bytes.Length;
            for (int e = 1 + rng.Next(maxEdits); e > 0 && length > 0; e--)
            {
                int at = pick(rng, length);
                if (at >= length) continue;
                switch (rng.Next(5))
                {
                    case 0:
                        bytes[at] ^= (byte)(1 << rng.Next(8));
                        break;
                    case 1 when (at & ~(wordSize - 1)) + wordSize <= length:
                    {
                        at &= ~(wordSize - 1);
                        ulong value = rng.Next(4) switch
                        {
                            0 => ulong.MaxValue,
                            1 => (ulong)rng.Next(),
                            2 => (ulong)rng.Next(0x100),
                            _ => ((1UL << (wordSize * 8 - 1)) - 1) >> rng.Next(wordSize * 8),
                        };
                        for (int i = 0; i < wordSize; i++) bytes[at + i] = (byte)(value >> (8 * i));
                        break;
                    }
                    case 2 when rng.Next(4) == 0:
                        length = rng.Next(length + 1);
                        break;
                    default:
                        bytes[at] = (byte)rng.Next(256);
                        break;
                }
            }
            Array.Resize(ref bytes, length);
            return bytes;
        }
    }
}
