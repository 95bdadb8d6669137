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

    /// <param name="Path">Full path of the patch file.</param>
    /// <param name="SignaturePath">Where the signature was looked for: the patch file's path with ".sig" appended.</param>
    /// <param name="StatusMessage">Why, in a sentence an administrator can act on.</param>
    /// <param name="FileSha256">SHA-256 of the exact bytes checked, lowercase hex.</param>
    /// <param name="Thumbprint">SHA-1 thumbprint of the signer's certificate, uppercase hex, as Windows shows it.</param>
    /// <param name="TrustedBy">The trusted publisher or root entry that vouched for the signer.</param>
    public sealed record PatchSignature(
        string Path, string SignaturePath, SignatureStatus Status, string StatusMessage, string FileSha256,
        string? Signer = null, string? Thumbprint = null, DateTime? SigningTimeUtc = null, DateTime? NotAfterUtc = null, string? TrustedBy = null,
        X509Certificate2? Certificate = null)
    {
        public bool Trusted => Status == SignatureStatus.Valid;

        /// <summary>The signature file's conventional name for a patch file.</summary>
        public static string SignatureFileFor(string patchPath) => patchPath + ".sig";
    }
}
