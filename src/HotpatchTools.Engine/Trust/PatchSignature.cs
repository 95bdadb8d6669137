using System.Security.Cryptography.X509Certificates;

namespace HotpatchTools.Engine.Trust
{
    /// <summary>What a patch file's detached signature says, checked against this machine's trusted publishers.</summary>
    public enum SignatureStatus
    {
        /// <summary>Signed, unchanged since, by a certificate this machine trusts.</summary>
        Valid,
        /// <summary>No signature file beside the patch file.</summary>
        NotSigned,
        /// <summary>The file changed after it was signed.</summary>
        HashMismatch,
        /// <summary>The signature file is malformed or its signature does not verify.</summary>
        InvalidSignature,
        /// <summary>The signer's certificate may not sign code (extended or plain key usage).</summary>
        NotCodeSigning,
        /// <summary>The signer's certificate is not valid now (expired or not yet valid).</summary>
        CertificateExpired,
        /// <summary>The signature verifies, but neither its certificate nor a root it chains to is trusted here.</summary>
        UntrustedPublisher,
    }

    public sealed class PatchSignature
    {
        /// <summary>Full path of the patch file.</summary>
        public string Path { get; set; } = "";
        /// <summary>Where the signature was looked for: the patch file's path with ".sig" appended.</summary>
        public string SignaturePath { get; set; } = "";
        public SignatureStatus Status { get; set; }
        /// <summary>Why, in a sentence an administrator can act on.</summary>
        public string StatusMessage { get; set; } = "";
        /// <summary>SHA-256 of the exact bytes checked, lowercase hex.</summary>
        public string FileSha256 { get; set; } = "";
        public string? Signer { get; set; }
        /// <summary>SHA-1 thumbprint of the signer's certificate, uppercase hex, as Windows shows it.</summary>
        public string? Thumbprint { get; set; }
        public DateTime? SigningTimeUtc { get; set; }
        public DateTime? NotAfterUtc { get; set; }
        /// <summary>The trusted publisher or root entry that vouched for the signer.</summary>
        public string? TrustedBy { get; set; }
        public X509Certificate2? Certificate { get; set; }

        public bool Trusted => Status == SignatureStatus.Valid;

        /// <summary>The signature file's conventional name for a patch file.</summary>
        public static string SignatureFileFor(string patchPath) => patchPath + ".sig";
    }
}
