using System.Runtime.Versioning;
using System.Threading;
using HotpatchTools.Engine.Catalog;

namespace HotpatchTools.Tests
{
    /// <summary>The machine catalog's store on its own, in a folder of each test's (no environment override needed).</summary>
    public sealed class CatalogTests : IDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-catalog-").FullName;
        private string CatalogDir => Path.Combine(_dir, "catalog");

        public void Dispose() => Directory.Delete(_dir, recursive: true);

        private string WritePatch(string id, string module = "libexample.so", byte expectLast = 0x90, string? name = null)
        {
            var yaml = PatchFiles.Yaml(id, module, new[] { new PatchletSpec("f", new byte[] { 0x90, 0x90, 0x90, 0x90, expectLast }) });
            var path = Path.Combine(_dir, "src", (name ?? id) + ".micropatch.yaml");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, yaml);
            return path;
        }

        [Fact]
        [SupportedOSPlatform("linux")]
        public void Register_copies_the_file_and_its_signature_under_the_id_with_root_only_modes()
        {
            var src = WritePatch("HP-CAT-1", name: "some-other-name");
            File.WriteAllBytes(src + ".sig", new byte[] { 1, 2, 3 });
            var catalog = new MicropatchCatalog(CatalogDir);

            var entry = catalog.Register(MicropatchParserLoad(src), src, enabled: true, allowUnsigned: true, replace: false);

            Assert.Equal("HP-CAT-1", entry.PatchId);
            Assert.Equal("Test patch HP-CAT-1", entry.Title);
            Assert.Equal("libexample.so", entry.Module);
            Assert.True(entry.Enabled);
            Assert.True(entry.AllowUnsigned);
            Assert.Equal(Path.Combine(CatalogDir, "HP-CAT-1", "HP-CAT-1-" + entry.FileSha256[..12] + ".micropatch.yaml"), entry.PatchPath);
            Assert.Equal(File.ReadAllBytes(src), File.ReadAllBytes(entry.PatchPath));
            Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(entry.SignaturePath!));
            Assert.Equal(Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(src))).ToLowerInvariant(), entry.FileSha256);
            Assert.Equal(src, entry.SourcePath);
            Assert.InRange((DateTime.UtcNow - entry.RegisteredUtc).TotalSeconds, 0, 60);

            const UnixFileMode dirMode = (UnixFileMode)0x1ed, fileMode = (UnixFileMode)0x1a4;
            Assert.Equal(dirMode, File.GetUnixFileMode(CatalogDir));
            Assert.Equal(dirMode, File.GetUnixFileMode(Path.GetDirectoryName(entry.PatchPath)!));
            Assert.All(Directory.GetFiles(Path.GetDirectoryName(entry.PatchPath)!), f => Assert.Equal(fileMode, File.GetUnixFileMode(f)));
            Assert.Null(CatalogSecurity.Untrusted(entry.PatchPath));

            // Read back by a fresh instance, as another session would.
            var listed = Assert.Single(new MicropatchCatalog(CatalogDir).List());
            Assert.Equal(entry.FileSha256, listed.FileSha256);
            Assert.Equal(entry.RegisteredUtc, listed.RegisteredUtc);
            Assert.Equal("HP-CAT-1", new MicropatchCatalog(CatalogDir).Get("hp-cat-1").PatchId);
        }

        [Fact]
        public void The_same_content_registers_again_as_a_no_op_and_other_content_needs_replace()
        {
            var catalog = new MicropatchCatalog(CatalogDir);
            var v1 = WritePatch("HP-CAT-2");
            var first = catalog.Register(MicropatchParserLoad(v1), v1, enabled: false, allowUnsigned: false, replace: false);
            var again = catalog.Register(MicropatchParserLoad(v1), v1, enabled: true, allowUnsigned: false, replace: false);
            Assert.False(again.Enabled); // unchanged: the no-op does not rewrite the entry
            Assert.Equal(first.RegisteredUtc, again.RegisteredUtc);

            var v2 = WritePatch("HP-CAT-2", expectLast: 0xc3, name: "v2");
            var e = Assert.Throws<HotpatchException>(() => catalog.Register(MicropatchParserLoad(v2), v2, enabled: true, allowUnsigned: false, replace: false));
            Assert.Equal(HotpatchErrorKind.AlreadyInstalled, e.Kind);
            Assert.DoesNotContain("-Force", e.Message); // the engine names no parameter: Register-Micropatch adds the advice
            Assert.Equal(first.FileSha256, catalog.Get("HP-CAT-2").FileSha256);

            var replaced = catalog.Register(MicropatchParserLoad(v2), v2, enabled: true, allowUnsigned: false, replace: true);
            Assert.NotEqual(first.FileSha256, replaced.FileSha256);
            Assert.Equal(File.ReadAllBytes(v2), File.ReadAllBytes(replaced.PatchPath));
            Assert.Single(Directory.GetDirectories(CatalogDir)); // no scratch folder left behind
        }

        [Fact]
        public void A_file_changed_between_parsing_and_copying_is_not_registered()
        {
            var src = WritePatch("HP-CAT-3");
            var parsed = MicropatchParserLoad(src);
            File.AppendAllText(src, "# changed\n");
            var e = Assert.Throws<HotpatchException>(() => new MicropatchCatalog(CatalogDir).Register(parsed, src, true, false, false));
            Assert.Contains("changed while it was being registered", e.Message);
            Assert.Empty(new MicropatchCatalog(CatalogDir).List());
        }

        [Fact]
        public void Enable_disable_and_unregister_change_only_the_named_entry()
        {
            var catalog = new MicropatchCatalog(CatalogDir);
            foreach (var id in new[] { "HP-CAT-A", "HP-CAT-B" }) catalog.Register(MicropatchParserLoad(WritePatch(id)), WritePatch(id), true, false, false);

            Assert.False(catalog.SetEnabled("hp-cat-a", false).Enabled);
            Assert.Equal(new[] { false, true }, catalog.List().Select(e => e.Enabled));
            Assert.True(catalog.SetEnabled("HP-CAT-A", true).Enabled);
            Assert.Equal("HP-CAT-B", catalog.Unregister("HP-CAT-B").PatchId);
            Assert.Equal(new[] { "HP-CAT-A" }, catalog.List().Select(e => e.PatchId));
            Assert.Equal(HotpatchErrorKind.NotInstalled, Assert.Throws<HotpatchException>(() => catalog.Unregister("HP-CAT-B")).Kind);
            Assert.Single(Directory.GetDirectories(CatalogDir));
        }

        [Fact]
        public void Concurrent_readers_never_see_a_half_written_entry()
        {
            var catalog = new MicropatchCatalog(CatalogDir);
            var v1 = WritePatch("HP-CAT-RACE");
            var v2 = WritePatch("HP-CAT-RACE", expectLast: 0xc3, name: "v2");
            var p1 = MicropatchParserLoad(v1);
            var p2 = MicropatchParserLoad(v2);
            catalog.Register(p1, v1, true, false, false);

            int reads = 0, broken = 0, wrong = 0;
            string? lastBroken = null;
            using var stop = new CancellationTokenSource();
            var reader = new Thread(() =>
            {
                var mine = new MicropatchCatalog(CatalogDir);
                while (!stop.IsCancellationRequested)
                {
                    foreach (var e in mine.List((_, why) => { Interlocked.Increment(ref broken); lastBroken = why; }))
                    {
                        if (e.FileSha256 != p1.FileSha256 && e.FileSha256 != p2.FileSha256) wrong++;
                        // The file a state names is exactly the file registered with it, or gone (replaced since).
                        try
                        {
                            if (Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(e.PatchPath))).ToLowerInvariant() != e.FileSha256) wrong++;
                        }
                        catch (IOException) { }
                    }
                    reads++;
                }
            });
            reader.Start();
            for (int i = 0; i < 150; i++)
            {
                catalog.SetEnabled("HP-CAT-RACE", i % 2 == 0);
                catalog.Register(i % 2 == 0 ? p2 : p1, i % 2 == 0 ? v2 : v1, true, false, replace: true);
            }
            stop.Cancel();
            reader.Join();
            Assert.True(reads > 10, "only " + reads + " reads");
            Assert.True(broken == 0, broken + " broken reads, the last: " + lastBroken);
            Assert.Equal(0, wrong);
        }

        [Fact]
        public void A_state_file_that_names_a_path_or_is_larger_than_any_state_is_a_broken_entry()
        {
            var src = WritePatch("HP-CAT-STATE");
            var catalog = new MicropatchCatalog(CatalogDir);
            var entry = catalog.Register(MicropatchParserLoad(src), src, enabled: true, allowUnsigned: true, replace: false);
            var state = Path.Combine(Path.GetDirectoryName(entry.PatchPath)!, "entry.state");
            var good = File.ReadAllText(state);
            var fileLine = "file=" + Path.GetFileName(entry.PatchPath) + "\n";
            Assert.Contains(fileLine, good);

            string? Broken(string text)
            {
                File.WriteAllText(state, text);
                string? why = null;
                Assert.Empty(new MicropatchCatalog(CatalogDir).List((_, w) => why = w));
                return why;
            }
            Assert.Contains("is not a file name", Broken(good.Replace(fileLine, "file=../../" + Path.GetFileName(src) + "\n")));
            Assert.Contains("is not a file name", Broken(good.Replace(fileLine, "file=" + src + "\n")));
            Assert.Contains("more than any entry's state", Broken("#" + new string('x', 100 << 10) + "\n" + good));
            File.WriteAllText(state, good);
            Assert.Single(new MicropatchCatalog(CatalogDir).List());
        }

        private static Engine.Format.Micropatch MicropatchParserLoad(string path) => Engine.Format.MicropatchParser.Load(path);
    }
}
