using System.Security.Cryptography;
using System.Security.Cryptography.Pkcs;
using System.Security.Cryptography.X509Certificates;
using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Modules;

namespace HotpatchTools.Engine.Trust
{
    /// <summary>A patch file's bytes as read once, and what its signature says about exactly those bytes.</summary>
    public sealed record VerifiedFile(string FullPath, byte[] Bytes, PatchSignature Signature);

    /// <summary>
    /// Checks the detached CMS signature beside a patch file. The file is read once and the bytes hashed are the
    /// bytes returned, so a file swapped between the check and the parse cannot slip through.
    /// </summary>
    public static class SignatureVerifier
    {
        internal const string CodeSigningOid = "1.3.6.1.5.5.7.3.3";
        private const int MaxSignatureBytes = 1 << 20;

        private static readonly string[] StrongDigests = { "2.16.840.1.101.3.4.2.1", "2.16.840.1.101.3.4.2.2", "2.16.840.1.101.3.4.2.3" };

        public static VerifiedFile Verify(string path, TrustStore? store)
        {
            var bytes = MicropatchParser.ReadFile(path, out var fullPath);
            // The status and its message are Check's to give: every path through it does.
            var unverified = new PatchSignature(fullPath, PatchSignature.SignatureFileFor(fullPath), Status: default, StatusMessage: "", Sha256Hex(bytes));
            return new VerifiedFile(fullPath, bytes, Check(unverified, bytes, store));
        }

        private static PatchSignature Check(PatchSignature s, byte[] bytes, TrustStore? store)
        {
            PatchSignature Set(SignatureStatus status, string message) => s with { Status = status, StatusMessage = message };

            byte[] der;
            try
            {
                var info = new FileInfo(s.SignaturePath);
                if (!info.Exists) return Set(SignatureStatus.NotSigned, "No signature file " + s.SignaturePath + ".");
                // Opened as a module is (a FIFO would block the open), and the length checked on what was opened.
                using var stream = ModuleFile.OpenRegular(s.SignaturePath);
                if (stream.Length > MaxSignatureBytes) return Set(SignatureStatus.InvalidSignature, s.SignaturePath + " is larger than " + MaxSignatureBytes + " bytes; it is no patch signature.");
                der = new byte[stream.Length];
                int read = 0, n;
                while (read < der.Length && (n = stream.Read(der, read, der.Length - read)) > 0) read += n;
                if (read < der.Length) throw new IOException("the file shrank while it was being read");
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                return Set(SignatureStatus.InvalidSignature, "Cannot read " + s.SignaturePath + ": " + e.Message);
            }

            var cms = new SignedCms(new ContentInfo(bytes), detached: true);
            try { cms.Decode(der); }
            catch (CryptographicException e) { return Set(SignatureStatus.InvalidSignature, s.SignaturePath + " is not a CMS/PKCS#7 signature: " + e.Message); }
            try { return CheckDecoded(s, cms, bytes, store); }
            catch (CryptographicException e)
            {
                // Decode checks the envelope only: the signer's certificate, its validity dates and extensions, and the
                // signed attributes are decoded where first used, so a damaged or forged one fails there.
                return Set(SignatureStatus.InvalidSignature, s.SignaturePath + " holds a malformed part (certificate or signed attribute): " + e.Message);
            }
        }

        private static PatchSignature CheckDecoded(PatchSignature s, SignedCms cms, byte[] bytes, TrustStore? store)
        {
            PatchSignature Set(SignatureStatus status, string message) => s with { Status = status, StatusMessage = message };

            if (cms.SignerInfos.Count != 1) return Set(SignatureStatus.InvalidSignature, s.SignaturePath + " has " + cms.SignerInfos.Count + " signers; a patch signature has exactly one.");

            var signer = cms.SignerInfos[0];
            var cert = signer.Certificate;
            if (cert == null) return Set(SignatureStatus.InvalidSignature, s.SignaturePath + " does not carry the signer's certificate.");
            s = s with { Certificate = cert, Signer = cert.Subject, Thumbprint = cert.Thumbprint.ToUpperInvariant(), NotAfterUtc = cert.NotAfter.ToUniversalTime() };
            foreach (var a in signer.SignedAttributes)
                foreach (var v in a.Values)
                    if (v is Pkcs9SigningTime t) s = s with { SigningTimeUtc = t.SigningTime.ToUniversalTime() };

            string digestOid = signer.DigestAlgorithm.Value ?? "";
            if (!StrongDigests.Contains(digestOid))
            {
                return Set(SignatureStatus.InvalidSignature, "The signature uses the digest " + (signer.DigestAlgorithm.FriendlyName ?? digestOid) + "; SHA-256 or stronger is required.");
            }
            var claimed = signer.SignedAttributes.Cast<CryptographicAttributeObject>().SelectMany(a => a.Values.Cast<AsnEncodedData>()).OfType<Pkcs9MessageDigest>().FirstOrDefault();
            if (claimed == null) return Set(SignatureStatus.InvalidSignature, "The signature has no signed message digest; it does not bind the file's bytes.");
            var actual = Digest(digestOid, bytes);
            if (!actual.SequenceEqual(claimed.MessageDigest))
            {
                return Set(SignatureStatus.HashMismatch, "The file changed after it was signed: its SHA-256 is " + s.FileSha256 + ", and the signature by " + s.Signer + " covers other bytes.");
            }
            try { signer.CheckSignature(verifySignatureOnly: true); }
            catch (CryptographicException e) { return Set(SignatureStatus.InvalidSignature, "The signature does not verify with the certificate of " + s.Signer + ": " + e.Message); }

            var why = WhyNotCodeSigning(cert);
            if (why != null) return Set(SignatureStatus.NotCodeSigning, "The certificate of " + s.Signer + " " + why + ".");
            var now = DateTime.UtcNow;
            if (now < cert.NotBefore.ToUniversalTime() || now > cert.NotAfter.ToUniversalTime())
            {
                return Set(SignatureStatus.CertificateExpired, "The certificate of " + s.Signer + " is valid from " + cert.NotBefore.ToUniversalTime().ToString("u") + " to " +
                    cert.NotAfter.ToUniversalTime().ToString("u") + ", not now; re-sign the file with a current certificate.");
            }

            if (store == null) return Set(SignatureStatus.UntrustedPublisher, "The signature is intact; no trust store was consulted.");
            var entry = store.Match(cert, cms.Certificates, out var reason);
            if (entry == null)
            {
                return Set(SignatureStatus.UntrustedPublisher, "The signature is intact, but its signer " + s.Signer + " (thumbprint " + s.Thumbprint + ") is not a trusted publisher on this machine" +
                    (reason.Length > 0 ? " (" + reason + ")" : "") + ".");
            }
            s = s with { TrustedBy = entry.Thumbprint };
            return Set(SignatureStatus.Valid, "Signed by " + s.Signer + ", trusted " + (entry.Kind == TrustKind.Root ? "through the root " + entry.Subject : "as a publisher") + ".");
        }

        /// <summary>
        /// RFC 5280: a certificate without an EKU extension may be used for any purpose; one with it must list code
        /// signing. A key usage extension, when present, must allow digital signatures.
        /// </summary>
        internal static string? WhyNotCodeSigning(X509Certificate2 cert)
        {
            foreach (var ext in cert.Extensions)
            {
                if (ext is X509EnhancedKeyUsageExtension eku && !eku.EnhancedKeyUsages.Cast<Oid>().Any(o => o.Value == CodeSigningOid))
                    return "has an extended key usage without code signing (" + CodeSigningOid + ")";
                if (ext is X509KeyUsageExtension ku && (ku.KeyUsages & X509KeyUsageFlags.DigitalSignature) == 0)
                    return "has a key usage without digital signature";
            }
            return null;
        }

        private static byte[] Digest(string oid, byte[] bytes)
        {
            using (HashAlgorithm h = oid == StrongDigests[1] ? SHA384.Create() : oid == StrongDigests[2] ? (HashAlgorithm)SHA512.Create() : SHA256.Create())
                return h.ComputeHash(bytes);
        }

        internal static string Sha256Hex(byte[] bytes)
        {
            using (var sha = SHA256.Create()) return Hex.Lower(sha.ComputeHash(bytes));
        }
    }
}
