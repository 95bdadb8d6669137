using HotpatchTools.Engine.Format;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// The two-site patch the fault and kill-safety tests interrupt (triple and short_jcc of tests/native/target.c),
    /// and what every interruption must leave: each site fully original or one jump into a cave, nothing past its
    /// span touched. `using static` in the tests that interrupt it.
    /// </summary>
    public static class TwoSitePatch
    {
        private static readonly string[] Sites = { "triple", "short_jcc" };
        private static readonly int[] Spans = { 6, 7 };

        /// <summary>
        /// A target with two threads calling both sites (and rip_first) in a loop, each result checked against the
        /// original meaning (Stats().Errors): an interruption lands while threads run through the sites.
        /// </summary>
        public static TargetProcess HammeredTarget()
        {
            var t = TargetProcess.Start();
            try
            {
                Assert.Equal("ok", t.Send("hammer 2"));
                return t;
            }
            catch
            {
                t.Dispose();
                throw;
            }
        }

        public static string TwoSitesYaml(TargetProcess t, string id) =>
            PatchFiles.Yaml(id, t.ModuleName, Sites.Select((s, i) => PatchFiles.At(t, s, Spans[i])));

        public static Micropatch TwoSites(TargetProcess t, string id) => PatchFiles.Parse(TwoSitesYaml(t, id));

        /// <summary>Each site's first 8 bytes: the span and what follows it.</summary>
        public static byte[][] Originals(TargetProcess t) => Sites.Select(s => t.ReadSymbol(s, 8)).ToArray();

        /// <summary>Each site holds its original bytes, or one jmp rel32 into a region that begins with a cave header.</summary>
        public static void AssertEachSiteOriginalOrPatched(TargetProcess t, byte[][] originals, string context)
        {
            var caves = t.CaveRegions();
            for (int i = 0; i < Sites.Length; i++)
            {
                ulong site = t.Symbol(Sites[i]);
                var now = t.Read(site, 8);
                if (now.SequenceEqual(originals[i])) continue;
                Assert.True(now[0] == 0xE9, context + ": " + Sites[i] + " is neither original nor a jump: " + Convert.ToHexString(now));
                ulong dest = site + 5 + (ulong)(long)BitConverter.ToInt32(now, 1);
                Assert.True(caves.Any(c => dest >= c.Start && dest < c.End), context + ": " + Sites[i] + " jumps to 0x" + dest.ToString("x") + ", outside every cave");
                // The bytes after the jump (up to the span's end) are never half-written originals followed by garbage:
                // the rest of the 8 bytes past the span is untouched.
                Assert.True(now.AsSpan(Spans[i]).SequenceEqual(originals[i].AsSpan(Spans[i])), context + ": bytes past " + Sites[i] + "'s span changed");
            }
        }
    }

    /// <summary>
    /// The two-site patch as a file in a temporary folder of its own, for an installer process to read, and parsed for
    /// this one; the folder is gone when this is disposed.
    /// </summary>
    public sealed class TwoSitePatchFile : IDisposable
    {
        private readonly string _dir;

        public TwoSitePatchFile(TargetProcess t, string id)
        {
            _dir = Directory.CreateTempSubdirectory("hpt-" + id.ToLowerInvariant() + "-").FullName;
            Path = PatchFiles.WriteFile(_dir, id, TwoSitePatch.TwoSitesYaml(t, id));
            Patch = PatchFiles.Parse(File.ReadAllText(Path));
        }

        public string Path { get; }
        public Micropatch Patch { get; }

        public void Dispose() => Directory.Delete(_dir, recursive: true);
    }
}
