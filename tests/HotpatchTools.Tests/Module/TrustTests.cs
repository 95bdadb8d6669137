using System.Management.Automation;
using System.Security;
using System.Security.Cryptography.X509Certificates;
using static HotpatchTools.Tests.Support.PSObjects;

namespace HotpatchTools.Tests
{
    /// <summary>Tests that change the machine's trusted publishers run one at a time.</summary>
    [CollectionDefinition(Name, DisableParallelization = true)]
    public sealed class MachineTrustCollection
    {
        public const string Name = "Machine trust store";
    }

    /// <summary>
    /// Signed patch files through the module in a hosted runspace, against a live target: only an intact file from a
    /// trusted publisher installs; every refusal leaves the target untouched and its reason in the audit log.
    /// </summary>
    [Collection(MachineTrustCollection.Name)]
    public sealed class TrustTests : IDisposable
    {
        private readonly TargetProcess _t = TargetProcess.Start();
        private readonly ModuleShell _sh = new ModuleShell();
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-trust-").FullName;
        private readonly string _run = Guid.NewGuid().ToString("n")[..8].ToUpperInvariant();
        private readonly X509Certificate2 _publisher;
        private readonly List<string> _trusted = new List<string>();

        public TrustTests()
        {
            _publisher = TestCertificates.SelfSigned("CN=HotpatchTools Test Publisher " + _run + ", O=HotpatchTools Tests");
            Trust(_publisher);
        }

        public void Dispose()
        {
            foreach (var t in _trusted) _sh.Run("Remove-MicropatchTrustedPublisher -Thumbprint $args[0] -Force -ErrorAction SilentlyContinue", t);
            _sh.Dispose();
            _t.Dispose();
            Directory.Delete(_dir, recursive: true);
        }

        private void Trust(X509Certificate2 cert, bool root = false)
        {
            _sh.Run("Add-MicropatchTrustedPublisher -Certificate $args[0] -Root:$args[1] -Force", cert, root);
            Assert.Empty(_sh.Errors);
            _trusted.Add(cert.Thumbprint);
        }

        private string Id(string name) => "HP-" + name + "-" + _run;

        private string WritePatch(string id) => PatchFiles.Write(_dir, _t, id);

        private void Sign(string path, X509Certificate2 cert)
        {
            _sh.Run("Set-MicropatchSignature -Path $args[0] -Certificate $args[1] -Force", path, cert);
            Assert.Empty(_sh.Errors);
            Assert.True(File.Exists(path + ".sig"));
        }

        private PSObject Signature(string path) => _sh.Run("Get-MicropatchSignature -Path $args[0]", path).Single();

        private PSObject[] Audit(string id) => _sh.Run("Get-MicropatchAuditLog -PatchId $args[0]", id).ToArray();

        /// <summary>Installs through the module; returns the single error record, or null.</summary>
        private ErrorRecord? Install(string path, string extra = "")
        {
            _sh.Run("Install-Micropatch -Path $args[0] -ProcessId $args[1] -Force " + extra, path, _t.Pid);
            return _sh.Errors.SingleOrDefault();
        }

        private void AssertUntouched(byte[] before)
        {
            Assert.Equal(before, _t.ReadSymbol("triple", 6));
            Assert.Equal(0, _t.CaveCount());
            Assert.Equal(1501, _t.Call("triple", 500));
        }

        private static string[] ModuleProtections(TargetProcess t) =>
            File.ReadAllLines("/proc/" + t.Pid + "/maps").Where(l => l.EndsWith(t.ExePath, StringComparison.Ordinal))
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(f => f[0] + " " + f[1]).ToArray();

        [Fact]
        public void A_patch_signed_by_a_trusted_publisher_installs_and_the_audit_log_names_signer_and_hash()
        {
            var id = Id("GOOD");
            var path = WritePatch(id);
            Sign(path, _publisher);

            var sig = Signature(path);
            Assert.Equal("Valid", Text(sig, "Status"));
            Assert.Equal(true, sig.Properties["Trusted"].Value);
            Assert.Equal(_publisher.Subject, Text(sig, "Signer"));
            Assert.Equal(_publisher.Thumbprint, Text(sig, "Thumbprint"));
            var signed = (DateTime)sig.Properties["SigningTime"].Value;
            Assert.InRange(signed.ToUniversalTime(), DateTime.UtcNow.AddMinutes(-5), DateTime.UtcNow.AddMinutes(1));
            Assert.Equal(Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path))).ToLowerInvariant(), Text(sig, "FileSha256"));

            var protections = ModuleProtections(_t);
            Assert.Null(Install(path));
            Assert.Equal(-1, _t.Call("triple", 500));
            // The module's own mappings keep their protection: the jump is written through ptrace, nothing is made writable.
            Assert.Equal(protections, ModuleProtections(_t));

            _sh.Run("Uninstall-Micropatch -PatchId $args[0] -ProcessId $args[1] -Force", id, _t.Pid);
            Assert.Empty(_sh.Errors);
            Assert.Equal(1501, _t.Call("triple", 500));

            var records = Audit(id);
            Assert.Equal(new[] { "Install Installed", "Uninstall Removed" }, records.Select(r => Text(r, "Action") + " " + Text(r, "Result")));
            var install = records[0];
            Assert.Equal(_publisher.Subject, Text(install, "Signer"));
            Assert.Equal(_publisher.Thumbprint, Text(install, "Thumbprint"));
            Assert.Equal("Valid", Text(install, "SignatureStatus"));
            Assert.Equal(Text(sig, "FileSha256"), Text(install, "FileSha256"));
            Assert.Equal(_t.Pid, (int)install.Properties["ProcessId"].Value);
            Assert.Equal(_t.ModuleName, Text(install, "Module"));
            Assert.Equal(Environment.MachineName, Text(install, "ComputerName"));
            Assert.Equal(Environment.UserName, Text(install, "User"));
            Assert.Equal(Text(sig, "FileSha256"), Text(records[1], "FileSha256")); // read back from the process's cave
        }

        [Fact]
        public void A_file_changed_by_one_byte_after_signing_is_refused_and_the_target_is_untouched()
        {
            var id = Id("TAMPER");
            var path = WritePatch(id);
            Sign(path, _publisher);
            var bytes = File.ReadAllBytes(path);
            int at = Array.LastIndexOf(bytes, (byte)'1'); // "cmp edi, 100" becomes "cmp edi, 000"
            bytes[at] = (byte)'0';
            File.WriteAllBytes(path, bytes);
            var before = _t.ReadSymbol("triple", 6);

            Assert.Equal("HashMismatch", Text(Signature(path), "Status"));
            // Not even -AllowUnsigned lets a tampered file through.
            var error = Install(path, "-AllowUnsigned");
            Assert.NotNull(error);
            Assert.StartsWith("HashMismatch", error!.FullyQualifiedErrorId);
            Assert.Equal(ErrorCategory.SecurityError, error.CategoryInfo.Category);
            Assert.Contains("changed after it was signed", error.Exception.Message);
            Assert.Contains(path, error.Exception.Message);
            AssertUntouched(before);

            var refused = Assert.Single(Audit(id));
            Assert.Equal("Refused", Text(refused, "Result"));
            Assert.Equal("HashMismatch", Text(refused, "ErrorId"));
            Assert.Contains("changed after it was signed", Text(refused, "Error"));
            Assert.Equal(_publisher.Thumbprint, Text(refused, "Thumbprint"));
        }

        [Fact]
        public void A_file_signed_by_an_untrusted_certificate_is_refused_even_with_AllowUnsigned()
        {
            var id = Id("STRANGER");
            var path = WritePatch(id);
            using var stranger = TestCertificates.SelfSigned("CN=Somebody Else " + _run);
            Sign(path, stranger);
            var before = _t.ReadSymbol("triple", 6);

            var sig = Signature(path);
            Assert.Equal("UntrustedPublisher", Text(sig, "Status"));
            Assert.Equal(false, sig.Properties["Trusted"].Value);
            Assert.Equal(stranger.Thumbprint, Text(sig, "Thumbprint"));

            foreach (var extra in new[] { "", "-AllowUnsigned" })
            {
                var error = Install(path, extra);
                Assert.NotNull(error);
                Assert.StartsWith("UntrustedPublisher", error!.FullyQualifiedErrorId);
                Assert.Contains(stranger.Subject, error.Exception.Message);
                Assert.Contains("Add-MicropatchTrustedPublisher", error.Exception.Message);
                AssertUntouched(before);
            }
            var refused = Audit(id);
            Assert.Equal(2, refused.Length);
            Assert.All(refused, r => Assert.Equal("Refused UntrustedPublisher " + stranger.Subject, Text(r, "Result") + " " + Text(r, "ErrorId") + " " + Text(r, "Signer")));
        }

        [Fact]
        public void An_unsigned_file_is_refused_without_AllowUnsigned_and_installs_with_it()
        {
            var id = Id("UNSIGNED");
            var path = WritePatch(id);
            var before = _t.ReadSymbol("triple", 6);
            Assert.Equal("NotSigned", Text(Signature(path), "Status"));

            var error = Install(path);
            Assert.NotNull(error);
            Assert.StartsWith("NotSigned", error!.FullyQualifiedErrorId);
            Assert.Contains("-AllowUnsigned", error.Exception.Message);
            AssertUntouched(before);

            Assert.Null(Install(path, "-AllowUnsigned"));
            Assert.Equal(-1, _t.Call("triple", 500));
            _sh.Run("Uninstall-Micropatch -PatchId $args[0] -ProcessId $args[1] -Force", id, _t.Pid);
            Assert.Empty(_sh.Errors);

            var records = Audit(id);
            Assert.Equal(new[] { "Refused NotSigned", "Installed ", "Removed " }, records.Select(r => Text(r, "Result") + " " + Text(r, "ErrorId")));
            Assert.Equal("NotSigned", Text(records[1], "SignatureStatus"));
            Assert.Equal("", Text(records[1], "Signer"));
            Assert.Single(_sh.Run("Get-MicropatchAuditLog -PatchId $args[0] -Result Refused", id));
            Assert.Equal("Removed", Text(_sh.Run("Get-MicropatchAuditLog -PatchId $args[0] -Last 1", id).Single(), "Result"));
        }

        [Fact]
        public void Add_trusted_publisher_from_a_missing_file_a_folder_or_a_non_certificate_says_which_naming_the_file()
        {
            var missing = Path.Combine(_dir, "missing.cer");
            var notCert = Path.Combine(_dir, "notes.cer");
            File.WriteAllText(notCert, "not a certificate\n");
            foreach (var (path, id, category, text) in new[]
            {
                (missing, "CertificateNotFound", ErrorCategory.ObjectNotFound, "The certificate file " + missing + " does not exist."),
                (_dir, "CertificateIsFolder", ErrorCategory.InvalidArgument, _dir + " is a folder, not a certificate file"),
                (notCert, "CertificateUnreadable", ErrorCategory.InvalidData, notCert + " is not a certificate file (.cer, DER or Base64): "),
            })
            {
                var before = _sh.Run("Get-MicropatchTrustedPublisher").Count;
                _sh.Run("Add-MicropatchTrustedPublisher -Path $args[0] -Force", path);
                var error = Assert.Single(_sh.Errors);
                Assert.StartsWith(id + ",", error.FullyQualifiedErrorId);
                Assert.Equal(category, error.CategoryInfo.Category);
                Assert.StartsWith(text, error.Exception.Message);
                Assert.Equal(before, _sh.Run("Get-MicropatchTrustedPublisher").Count);
            }
        }

        [Fact]
        public void A_certificate_issued_under_a_trusted_root_is_trusted_and_one_from_another_CA_is_not()
        {
            using var ca = TestCertificates.CertificateAuthority("CN=HotpatchTools Test Root " + _run);
            using var leaf = TestCertificates.IssuedBy(ca, "CN=Patch Team " + _run);
            using var otherCa = TestCertificates.CertificateAuthority("CN=Other Root " + _run);
            using var otherLeaf = TestCertificates.IssuedBy(otherCa, "CN=Patch Team " + _run);
            var caFile = Path.Combine(_dir, "root.cer");
            File.WriteAllBytes(caFile, ca.Export(X509ContentType.Cert));
            _sh.Run("Add-MicropatchTrustedPublisher -Path $args[0] -Root -Force", caFile);
            Assert.Empty(_sh.Errors);
            _trusted.Add(ca.Thumbprint);
            var entry = _sh.Run("Get-MicropatchTrustedPublisher -Thumbprint $args[0]", ca.Thumbprint).Single();
            Assert.Equal("Root", Text(entry, "Kind"));
            Assert.Equal(ca.Subject, Text(entry, "Subject"));

            var id = Id("CHAIN");
            var path = WritePatch(id);
            Sign(path, leaf);
            var sig = Signature(path);
            Assert.Equal("Valid", Text(sig, "Status"));
            Assert.Equal(ca.Thumbprint, Text(sig, "TrustedBy"));
            Assert.Null(Install(path));
            Assert.Equal(-1, _t.Call("triple", 500));
            _sh.Run("Uninstall-Micropatch -PatchId $args[0] -ProcessId $args[1] -Force", id, _t.Pid);

            // Same subject, another CA: the chain does not end at a trusted root.
            Sign(path, otherLeaf);
            Assert.Equal("UntrustedPublisher", Text(Signature(path), "Status"));
            Assert.StartsWith("UntrustedPublisher", Install(path)!.FullyQualifiedErrorId);
            Assert.Equal(1501, _t.Call("triple", 500));
        }

        [Fact]
        public void Signing_with_a_PFX_and_its_password_works_and_a_wrong_password_is_a_terminating_error()
        {
            var id = Id("PFX");
            var path = WritePatch(id);
            var pfx = Path.Combine(_dir, "publisher.pfx");
            File.WriteAllBytes(pfx, _publisher.Export(X509ContentType.Pfx, "correct horse"));
            var password = new SecureString();
            foreach (var c in "correct horse") password.AppendChar(c);
            var wrong = new SecureString();
            foreach (var c in "wrong") wrong.AppendChar(c);

            var sig = _sh.Run("Set-MicropatchSignature -Path $args[0] -PfxPath $args[1] -PfxPassword $args[2] -Force -PassThru", path, pfx, password).Single();
            Assert.Empty(_sh.Errors);
            Assert.Equal("Valid", Text(sig, "Status"));

            File.Delete(path + ".sig");
            _sh.Run("Set-MicropatchSignature -Path $args[0] -PfxPath $args[1] -PfxPassword $args[2] -Force", path, pfx, wrong);
            Assert.StartsWith("SignatureInvalid", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
            Assert.False(File.Exists(path + ".sig"));
        }

        [Fact]
        public void Signing_with_a_PFX_path_that_is_missing_or_a_folder_says_so_and_signs_nothing()
        {
            var path = WritePatch(Id("NOPFX"));
            var missing = Path.Combine(_dir, "missing.pfx");
            foreach (var (pfx, id, category, text) in new[]
            {
                (missing, "PfxFileNotFound", ErrorCategory.ObjectNotFound, "The PFX file " + missing + " does not exist."),
                (_dir, "PfxFileIsFolder", ErrorCategory.InvalidArgument, _dir + " is a folder, not a PFX file."),
            })
            {
                _sh.Run("Set-MicropatchSignature -Path $args[0] -PfxPath $args[1] -Force", path, pfx);
                var error = Assert.Single(_sh.Errors);
                Assert.StartsWith(id + ",", error.FullyQualifiedErrorId);
                Assert.Equal(category, error.CategoryInfo.Category);
                Assert.Equal(text, error.Exception.Message);
                Assert.False(File.Exists(path + ".sig"));
            }
        }

        [Fact]
        public void A_certificate_for_another_purpose_cannot_sign_and_cannot_be_trusted_as_a_publisher()
        {
            using var tls = TestCertificates.SelfSigned("CN=web server " + _run, eku: "1.3.6.1.5.5.7.3.1");
            var path = WritePatch(Id("TLS"));
            _sh.Run("Set-MicropatchSignature -Path $args[0] -Certificate $args[1] -Force", path, tls);
            var error = Assert.Single(_sh.Errors);
            Assert.StartsWith("SignatureInvalid", error.FullyQualifiedErrorId);
            Assert.Contains("1.3.6.1.5.5.7.3.3", error.Exception.Message);
            Assert.False(File.Exists(path + ".sig"));

            _sh.Run("Add-MicropatchTrustedPublisher -Certificate $args[0] -Force", tls);
            Assert.StartsWith("TrustStoreError", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
            Assert.Empty(_sh.Run("Get-MicropatchTrustedPublisher -Thumbprint $args[0]", tls.Thumbprint));
        }

        [Fact]
        public void Removing_a_publisher_makes_its_files_untrusted_and_trust_changes_are_audited()
        {
            var path = WritePatch(Id("REVOKE"));
            Sign(path, _publisher);
            Assert.Equal("Valid", Text(Signature(path), "Status"));
            var listed = _sh.Run("Get-MicropatchTrustedPublisher -Thumbprint $args[0]", _publisher.Thumbprint).Single();
            Assert.Equal("Publisher", Text(listed, "Kind"));
            Assert.True(File.Exists(Text(listed, "CertificatePath")));

            var removed = _sh.Run("Remove-MicropatchTrustedPublisher -Thumbprint $args[0] -Force -PassThru", _publisher.Thumbprint).Single();
            Assert.Empty(_sh.Errors);
            Assert.Equal(_publisher.Thumbprint, Text(removed, "Thumbprint"));
            Assert.False(File.Exists(Text(listed, "CertificatePath")));
            Assert.Equal("UntrustedPublisher", Text(Signature(path), "Status"));

            var changes = _sh.Run("Get-MicropatchAuditLog -Action AddTrustedPublisher, RemoveTrustedPublisher").Where(r => Text(r, "Thumbprint") == _publisher.Thumbprint).ToArray();
            Assert.Equal(new[] { "AddTrustedPublisher Added", "RemoveTrustedPublisher Removed" }, changes.Select(r => Text(r, "Action") + " " + Text(r, "Result")));

            _sh.Run("Remove-MicropatchTrustedPublisher -Thumbprint $args[0] -Force", _publisher.Thumbprint);
            Assert.StartsWith("PublisherNotFound", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
        }

        [Fact]
        public void A_trust_list_that_others_could_have_written_trusts_nobody()
        {
            if (OperatingSystem.IsWindows()) return; // the ACL set at creation is what protects it there
            var path = WritePatch(Id("LOOSE"));
            Sign(path, _publisher);
            var list = Path.Combine(MachineRoot.Path, "trust", "trusted-publishers.jsonl");
            var mode = File.GetUnixFileMode(list);
            File.SetUnixFileMode(list, mode | UnixFileMode.OtherWrite);
            try
            {
                _sh.Run("Get-MicropatchSignature -Path $args[0]", path);
                var error = Assert.Single(_sh.Errors);
                Assert.StartsWith("TrustStoreError", error.FullyQualifiedErrorId);
                Assert.Contains("writable by group or others", error.Exception.Message);
                Assert.StartsWith("TrustStoreError", Install(path)!.FullyQualifiedErrorId);
                Assert.Equal(1501, _t.Call("triple", 500));
                var refused = Assert.Single(Audit(Id("LOOSE")));
                Assert.Equal("Refused TrustStoreError", Text(refused, "Result") + " " + Text(refused, "ErrorId"));
            }
            finally { File.SetUnixFileMode(list, mode); }
            Assert.Equal("Valid", Text(Signature(path), "Status"));
        }
    }
}
