using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Threading;
using HotpatchTools.Engine.Audit;
using HotpatchTools.Engine.Machine;

namespace HotpatchTools.Engine.Trust
{
    public enum TrustKind
    {
        /// <summary>Files signed by exactly this certificate are trusted.</summary>
        Publisher,
        /// <summary>Files signed by any code-signing certificate that chains to this CA certificate are trusted.</summary>
        Root,
    }

    /// <param name="Subject">Empty when only the thumbprint was given.</param>
    /// <param name="CertificatePath">The copy of the certificate in the trust folder, or empty.</param>
    public sealed record TrustedPublisher(
        string Thumbprint, TrustKind Kind, string Subject, DateTime? NotAfterUtc, DateTime AddedUtc, string AddedBy, string CertificatePath);

    /// <summary>
    /// The machine's trusted publishers: trusted-publishers.jsonl (one JSON object per entry) and a DER copy of each
    /// certificate (THUMBPRINT.cer) in <see cref="MachinePaths.TrustDirectory"/>, which only administrators can write.
    /// </summary>
    public sealed class TrustStore
    {
        public const string ListFileName = "trusted-publishers.jsonl";

        public TrustStore(string directory) { Directory = directory; }

        public static TrustStore Machine => new TrustStore(MachinePaths.TrustDirectory);

        public string Directory { get; }

        public string ListFile => Path.Combine(Directory, ListFileName);

        private static string OnlyAdmins => System.Runtime.InteropServices.RuntimeInformation.IsOSPlatform(System.Runtime.InteropServices.OSPlatform.Windows) ? "Only Administrators and SYSTEM" : "Only root";

        public IReadOnlyList<TrustedPublisher> List()
        {
            if (!File.Exists(ListFile)) return new TrustedPublisher[0];
            // A list someone other than root could have edited decides nothing.
            var why = SecureFiles.WhyNotAdminOnly(Directory) ?? SecureFiles.WhyNotAdminOnly(ListFile);
            if (why != null) throw new HotpatchException(HotpatchErrorKind.TrustStoreError, "The trusted publishers are not trusted: " + why + ". " + OnlyAdmins + " may be able to write " + Directory + " and the folders above it.");
            var list = new List<TrustedPublisher>();
            int n = 0;
            string text;
            // Read through the handle that was checked: the path may have been swapped since.
            try { text = new UTF8Encoding(false).GetString(SecureFiles.ReadAdminFile(ListFile)); }
            catch (Exception e) when (e is UnauthorizedAccessException || e is IOException)
            {
                throw new HotpatchException(HotpatchErrorKind.TrustStoreError, "The trusted publishers are not trusted: " + e.Message + ". " + OnlyAdmins + " may be able to write " + Directory + " and the folders above it.", e);
            }
            foreach (var line in text.Split('\n'))
            {
                n++;
                if (line.Trim().Length == 0) continue;
                var o = JsonLine.Parse(line) ?? throw new HotpatchException(HotpatchErrorKind.TrustStoreError, ListFile + ", line " + n + ": not a JSON object.");
                string Str(string k) => o.TryGetValue(k, out var v) && v is string s ? s : "";
                DateTime? Time(string k) => DateTime.TryParse(Str(k), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var t) ? t : (DateTime?)null;
                if (!Enum.TryParse<TrustKind>(Str("kind"), out var kind) || Str("thumbprint").Length == 0)
                    throw new HotpatchException(HotpatchErrorKind.TrustStoreError, ListFile + ", line " + n + ": no valid kind and thumbprint.");
                list.Add(new TrustedPublisher(
                    Str("thumbprint"), kind, Str("subject"), Time("notAfter"), Time("added") ?? DateTime.MinValue, Str("addedBy"),
                    Str("certificate").Length == 0 ? "" : Path.Combine(Directory, Str("certificate"))));
            }
            return list;
        }

        public static string NormalizeThumbprint(string thumbprint)
        {
            var t = new string(thumbprint.Where(c => !char.IsWhiteSpace(c) && c != ':').ToArray()).ToUpperInvariant();
            if (t.Length != 40 || !t.All(Uri.IsHexDigit))
                throw new HotpatchException(HotpatchErrorKind.TrustStoreError, "'" + thumbprint + "' is not a certificate thumbprint (40 hex digits, the SHA-1 of the certificate).");
            return t;
        }

        /// <summary>Trusts a certificate, as a publisher or as a root of publishers. Needs an elevated session.</summary>
        public TrustedPublisher Add(X509Certificate2 certificate, TrustKind kind)
        {
            if (kind == TrustKind.Publisher)
            {
                var why = SignatureVerifier.WhyNotCodeSigning(certificate);
                if (why != null) throw new HotpatchException(HotpatchErrorKind.TrustStoreError, "The certificate " + certificate.Subject + " " + why + "; it can never sign a patch that would be accepted.");
            }
            var entry = new TrustedPublisher(
                certificate.Thumbprint.ToUpperInvariant(), kind, certificate.Subject, certificate.NotAfter.ToUniversalTime(),
                DateTime.UtcNow, AuditRecord.CurrentUser(), Path.Combine(Directory, certificate.Thumbprint.ToUpperInvariant() + ".cer"));
            Change("Adding a trusted publisher", list =>
            {
                File.WriteAllBytes(entry.CertificatePath, certificate.Export(X509ContentType.Cert));
                SecureFiles.MakeAdminFile(entry.CertificatePath);
                list.RemoveAll(p => p.Thumbprint == entry.Thumbprint);
                list.Add(entry);
            });
            return entry;
        }

        /// <summary>Trusts a publisher known only by thumbprint (its certificate arrives inside each signature).</summary>
        public TrustedPublisher AddThumbprint(string thumbprint)
        {
            var entry = new TrustedPublisher(NormalizeThumbprint(thumbprint), TrustKind.Publisher, Subject: "", NotAfterUtc: null,
                DateTime.UtcNow, AuditRecord.CurrentUser(), CertificatePath: "");
            Change("Adding a trusted publisher", list =>
            {
                list.RemoveAll(p => p.Thumbprint == entry.Thumbprint);
                list.Add(entry);
            });
            return entry;
        }

        /// <summary>Removes an entry and its certificate copy; returns it, or null if there was none.</summary>
        public TrustedPublisher? Remove(string thumbprint)
        {
            var t = NormalizeThumbprint(thumbprint);
            TrustedPublisher? removed = null;
            Change("Removing a trusted publisher", list =>
            {
                removed = list.FirstOrDefault(p => p.Thumbprint == t);
                if (removed == null) return;
                list.Remove(removed);
                if (removed.CertificatePath.Length > 0 && File.Exists(removed.CertificatePath)) File.Delete(removed.CertificatePath);
            });
            return removed;
        }

        /// <summary>The entry that vouches for a signer, or null with the reason a root did not.</summary>
        public TrustedPublisher? Match(X509Certificate2 signer, X509Certificate2Collection? extra, out string reason)
        {
            reason = "";
            var list = List();
            var thumb = signer.Thumbprint.ToUpperInvariant();
            var pinned = list.FirstOrDefault(p => p.Kind == TrustKind.Publisher && p.Thumbprint == thumb);
            if (pinned != null)
            {
                // A thumbprint is SHA-1: where the certificate itself was trusted, the whole certificate must match.
                if (pinned.CertificatePath.Length == 0) return pinned;
                if (ReadCertificate(pinned.CertificatePath, out _) is byte[] copy && copy.SequenceEqual(signer.RawData)) return pinned;
                reason = "its thumbprint is trusted, but the certificate differs from the trusted copy " + pinned.CertificatePath;
            }
            foreach (var root in list.Where(p => p.Kind == TrustKind.Root))
            {
                if (root.CertificatePath.Length == 0 || !File.Exists(root.CertificatePath)) { reason = "the certificate of root " + root.Thumbprint + " is missing from " + Directory; continue; }
                if (ReadCertificate(root.CertificatePath, out var why) is not byte[] rootBytes) { reason = "the certificate of root " + root.Thumbprint + " is not trusted: " + why; continue; }
                using (var rootCert = new X509Certificate2(rootBytes))
                using (var chain = new X509Chain())
                {
                    // Only this root counts, not the machine's: it is added as an extra certificate and the unknown-root
                    // status is accepted only when the chain ends at it. Revocation is not checked: patches are installed
                    // on machines that may have no route to a CRL, and removing the root or publisher revokes here.
                    // The file must be the certificate its entry names: a copy swapped under the entry's thumbprint vouches for nothing.
                    if (!string.Equals(rootCert.Thumbprint, root.Thumbprint, StringComparison.OrdinalIgnoreCase))
                    {
                        reason = "the certificate file " + root.CertificatePath + " is not root " + root.Thumbprint + " (it holds " + rootCert.Thumbprint + ")";
                        continue;
                    }
                    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    chain.ChainPolicy.VerificationFlags = X509VerificationFlags.AllowUnknownCertificateAuthority;
                    chain.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid(SignatureVerifier.CodeSigningOid));
                    chain.ChainPolicy.ExtraStore.Add(rootCert);
                    if (extra != null) chain.ChainPolicy.ExtraStore.AddRange(extra);
                    chain.Build(signer);
                    var top = chain.ChainElements.Count > 0 ? chain.ChainElements[chain.ChainElements.Count - 1].Certificate : null;
                    if (top == null || !top.RawData.SequenceEqual(rootCert.RawData)) continue;
                    var bad = chain.ChainStatus.Where(st => st.Status != X509ChainStatusFlags.NoError && st.Status != X509ChainStatusFlags.UntrustedRoot).ToList();
                    if (bad.Count == 0) return root;
                    reason = "its chain to root " + root.Subject + " is not valid: " + string.Join("; ", bad.Select(b => b.Status + " " + b.StatusInformation.Trim()));
                }
            }
            return null;
        }

        /// <summary>A certificate copy of the trust folder, read through a checked handle; null (and why) when it cannot be trusted.</summary>
        private static byte[]? ReadCertificate(string path, out string why)
        {
            why = "";
            try { return SecureFiles.ReadAdminFile(path); }
            catch (Exception e) when (e is UnauthorizedAccessException || e is IOException) { why = e.Message; return null; }
        }

        private void Change(string action, Action<List<TrustedPublisher>> change)
        {
            Privilege.Demand(action);
            SecureFiles.EnsureAdminDirectory(Directory);
            // One writer at a time, across processes: the list is read, changed and replaced as a whole.
            using (var gate = AcquireLock())
            {
                var list = List().ToList();
                change(list);
                var sb = new StringBuilder();
                foreach (var p in list)
                    sb.Append(JsonLine.Write(new[]
                    {
                        new KeyValuePair<string, object?>("kind", p.Kind.ToString()),
                        new KeyValuePair<string, object?>("thumbprint", p.Thumbprint),
                        new KeyValuePair<string, object?>("subject", p.Subject),
                        new KeyValuePair<string, object?>("notAfter", p.NotAfterUtc?.ToString("o", CultureInfo.InvariantCulture)),
                        new KeyValuePair<string, object?>("added", p.AddedUtc.ToString("o", CultureInfo.InvariantCulture)),
                        new KeyValuePair<string, object?>("addedBy", p.AddedBy),
                        new KeyValuePair<string, object?>("certificate", p.CertificatePath.Length == 0 ? "" : Path.GetFileName(p.CertificatePath)),
                    })).Append('\n');
                var tmp = ListFile + ".tmp";
                File.WriteAllText(tmp, sb.ToString(), new UTF8Encoding(false));
                SecureFiles.MakeAdminFile(tmp);
                if (File.Exists(ListFile)) File.Replace(tmp, ListFile, null);
                else File.Move(tmp, ListFile);
            }
        }

        private FileStream AcquireLock()
        {
            var path = Path.Combine(Directory, ".lock");
            for (int attempt = 0; ; attempt++)
            {
                try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
                catch (IOException) when (attempt < 100) { Thread.Sleep(50); }
            }
        }
    }
}
