using System.Security.Cryptography;
using System.Security.Cryptography.Pkcs;
using System.Security.Cryptography.X509Certificates;
using HotpatchTools.Engine.Format;

namespace HotpatchTools.Engine.Trust
{
    /// <summary>Writes the detached CMS signature (DER, SHA-256, signing time as a signed attribute) beside a patch file.</summary>
    public static class PatchSigner
    {
        public static X509Certificate2 LoadPfx(string pfxPath, string? password)
        {
            try
            {
                return new X509Certificate2(File.ReadAllBytes(pfxPath), password, X509KeyStorageFlags.DefaultKeySet);
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                throw new HotpatchException(HotpatchErrorKind.SignatureInvalid, "Cannot read the PFX file " + pfxPath + ": " + e.Message, e);
            }
            catch (CryptographicException e)
            {
                throw new HotpatchException(HotpatchErrorKind.SignatureInvalid, "Cannot open the PFX file " + pfxPath + " (wrong password, or not a PKCS#12 file): " + e.Message, e);
            }
        }

        /// <summary>Signs the exact bytes of the file and writes &lt;file&gt;.sig; returns the signature file's path.</summary>
        public static string Sign(string patchPath, X509Certificate2 certificate)
        {
            if (!certificate.HasPrivateKey)
                throw new HotpatchException(HotpatchErrorKind.SignatureInvalid, "The certificate " + certificate.Subject + " (thumbprint " + certificate.Thumbprint + ") has no private key here, so it cannot sign.");
            var why = SignatureVerifier.WhyNotCodeSigning(certificate);
            if (why != null)
                throw new HotpatchException(HotpatchErrorKind.SignatureInvalid, "The certificate " + certificate.Subject + " " + why + "; use a code-signing certificate.");

            var bytes = MicropatchParser.ReadFile(patchPath, out var fullPath);
            var cms = new SignedCms(new ContentInfo(bytes), detached: true);
            // The end certificate only: a verifier pins it by thumbprint or chains it to a root an administrator added,
            // and a self-signed certificate would vanish under ExcludeRoot.
            var signer = new CmsSigner(SubjectIdentifierType.IssuerAndSerialNumber, certificate)
            {
                DigestAlgorithm = new Oid("2.16.840.1.101.3.4.2.1"),
                IncludeOption = X509IncludeOption.EndCertOnly,
            };
            signer.SignedAttributes.Add(new Pkcs9SigningTime(DateTime.UtcNow));
            try { cms.ComputeSignature(signer, silent: true); }
            catch (CryptographicException e)
            {
                throw new HotpatchException(HotpatchErrorKind.SignatureInvalid, "Signing " + fullPath + " with " + certificate.Subject + " failed: " + e.Message, e);
            }
            var sigPath = PatchSignature.SignatureFileFor(fullPath);
            // Written whole, then renamed over the old one: a reader never sees half a signature.
            var tmp = sigPath + ".tmp" + Guid.NewGuid().ToString("n").Substring(0, 8);
            File.WriteAllBytes(tmp, cms.Encode());
            if (File.Exists(sigPath)) File.Replace(tmp, sigPath, null);
            else File.Move(tmp, sigPath);
            return sigPath;
        }
    }
}
