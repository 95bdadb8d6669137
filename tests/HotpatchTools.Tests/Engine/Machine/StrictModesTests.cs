using System.Runtime.Versioning;
using System.Text;
using HotpatchTools.Engine.Audit;
using HotpatchTools.Engine.Trust;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// Linux, as root: the files that decide trust and keep the audit trail are believed only when no one but root can
    /// have changed them, parents included (as sshd's StrictModes), and are read or appended through the handle that
    /// was checked, never through a link.
    /// </summary>
    [SupportedOSPlatform("linux")]
    public sealed class StrictModesTests : IDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-strict-").FullName;

        public StrictModesTests()
        {
            Assert.True(Engine.Platform.Linux.LibC.geteuid() == 0, "this test runs as root (it hands folders to another user)");
            File.SetUnixFileMode(_dir, (UnixFileMode)Convert.ToInt32("755", 8));
        }

        public void Dispose() => Directory.Delete(_dir, recursive: true);

        private static string Root(string dir)
        {
            Directory.CreateDirectory(dir);
            File.SetUnixFileMode(dir, (UnixFileMode)Convert.ToInt32("755", 8));
            return dir;
        }

        [Fact]
        public void A_trust_folder_below_a_folder_another_user_owns_is_not_trusted()
        {
            var user = Root(Path.Combine(_dir, "user"));
            NativeBuild.Run("chown", "65534:65534", user); // nobody could rename trust/ away and put their own in its place
            var trust = Root(Path.Combine(user, "trust"));
            File.WriteAllText(Path.Combine(trust, TrustStore.ListFileName), "{\"kind\":\"Publisher\",\"thumbprint\":\"" + new string('A', 40) + "\"}\n");
            var e = Assert.Throws<HotpatchException>(() => new TrustStore(trust).List());
            Assert.Equal(HotpatchErrorKind.TrustStoreError, e.Kind);
            Assert.Contains(user + " (above ", e.Message);
            Assert.Contains("uid 65534", e.Message);

            // The same list under root's folders is read.
            var good = Root(Path.Combine(_dir, "good"));
            File.Copy(Path.Combine(trust, TrustStore.ListFileName), Path.Combine(good, TrustStore.ListFileName));
            Assert.Single(new TrustStore(good).List());
        }

        [Fact]
        public void A_trusted_publisher_list_that_is_a_link_is_not_followed()
        {
            var trust = Root(Path.Combine(_dir, "trust"));
            var elsewhere = Path.Combine(_dir, "elsewhere.jsonl");
            File.WriteAllText(elsewhere, "{\"kind\":\"Publisher\",\"thumbprint\":\"" + new string('B', 40) + "\"}\n");
            File.CreateSymbolicLink(Path.Combine(trust, TrustStore.ListFileName), elsewhere);
            var e = Assert.Throws<HotpatchException>(() => new TrustStore(trust).List());
            Assert.Equal(HotpatchErrorKind.TrustStoreError, e.Kind);
            Assert.Contains("symbolic link", e.Message);
        }

        [Fact]
        public void A_linked_audit_log_is_not_followed_and_what_it_names_is_left_alone()
        {
            var logs = Root(Path.Combine(_dir, "log"));
            var victim = Path.Combine(_dir, "victim.conf");
            File.WriteAllText(victim, "setting = 1\n");
            File.CreateSymbolicLink(Path.Combine(logs, "audit.jsonl"), victim);
            var log = new AuditLog(Path.Combine(logs, "audit.jsonl"));
            var e = Record.Exception(() => log.Append(new AuditRecord { Action = AuditAction.Install, Result = AuditResult.Installed, PatchId = "HP-LINK" }));
            Assert.True(e is UnauthorizedAccessException || e is IOException, "appending through a link: " + (e?.ToString() ?? "no error"));
            Assert.Equal("setting = 1\n", File.ReadAllText(victim));
        }

        [Fact]
        public void A_root_certificate_file_that_is_not_the_entry_s_certificate_vouches_for_nobody()
        {
            using var trustedCa = TestCertificates.CertificateAuthority("CN=HPT Trusted Root");
            using var otherCa = TestCertificates.CertificateAuthority("CN=HPT Other Root");
            using var signer = TestCertificates.IssuedBy(otherCa, "CN=HPT Signed By The Other Root");
            var trust = Root(Path.Combine(_dir, "trust"));
            // The entry names the trusted root; its certificate file was swapped for another CA's.
            File.WriteAllBytes(Path.Combine(trust, trustedCa.Thumbprint + ".cer"), otherCa.RawData);
            File.WriteAllText(Path.Combine(trust, TrustStore.ListFileName),
                "{\"kind\":\"Root\",\"thumbprint\":\"" + trustedCa.Thumbprint + "\",\"subject\":\"CN=HPT Trusted Root\",\"certificate\":\"" + trustedCa.Thumbprint + ".cer\"}\n", new UTF8Encoding(false));
            var store = new TrustStore(trust);
            Assert.Null(store.Match(signer, null, out var reason));
            Assert.Contains("is not root " + trustedCa.Thumbprint, reason);
        }
    }
}
