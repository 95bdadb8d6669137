using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace HotpatchTools.Tests.Support
{
    /// <summary>Certificates made by the tests themselves, as an enterprise CA or a developer would make them.</summary>
    public static class TestCertificates
    {
        public const string CodeSigningOid = "1.3.6.1.5.5.7.3.3";

        private static CertificateRequest Request(string subject, RSA key, string eku, bool ca)
        {
            var req = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            req.CertificateExtensions.Add(new X509BasicConstraintsExtension(ca, false, 0, true));
            req.CertificateExtensions.Add(new X509KeyUsageExtension(ca ? X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature : X509KeyUsageFlags.DigitalSignature, true));
            if (eku.Length > 0) req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(new OidCollection { new Oid(eku) }, false));
            req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
            return req;
        }

        /// <summary>A self-signed code-signing certificate with its private key, as New-SelfSignedCertificate -Type CodeSigningCert makes.</summary>
        public static X509Certificate2 SelfSigned(string subject, string eku = CodeSigningOid)
        {
            using var key = RSA.Create(2048);
            return Request(subject, key, eku, ca: false).CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(1));
        }

        public static X509Certificate2 CertificateAuthority(string subject)
        {
            using var key = RSA.Create(2048);
            return Request(subject, key, "", ca: true).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(5));
        }

        /// <summary>A code-signing certificate issued by <paramref name="ca"/>, with its private key.</summary>
        public static X509Certificate2 IssuedBy(X509Certificate2 ca, string subject)
        {
            using var key = RSA.Create(2048);
            var req = Request(subject, key, CodeSigningOid, ca: false);
            var serial = new byte[12];
            RandomNumberGenerator.Fill(serial);
            serial[0] &= 0x7f;
            using var issued = req.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(1), serial);
            return issued.CopyWithPrivateKey(key);
        }
    }
}
