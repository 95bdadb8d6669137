using HotpatchTools.Engine.Format;

namespace HotpatchTools.Engine.Trust
{
    /// <summary>A patch file refused before anything was installed; carries what the audit record names.</summary>
    public sealed class PatchRefusedException : HotpatchException
    {
        public PatchRefusedException(HotpatchErrorKind kind, string message, PatchSignature signature, string? patchId)
            : base(kind, message)
        {
            Signature = signature;
            PatchId = patchId;
        }

        public PatchSignature Signature { get; }

        /// <summary>The id the refused file claims, when it parses; null otherwise.</summary>
        public string? PatchId { get; }
    }

    /// <summary>
    /// The one rule every install path goes through: a tampered file, a bad signature or an untrusted signer is
    /// always refused; an unsigned file only unless the caller explicitly allows unsigned files.
    /// </summary>
    public static class TrustPolicy
    {
        /// <summary>Reads, checks and parses a patch file; what is parsed is exactly what was verified.</summary>
        public static Micropatch Load(string path, bool allowUnsigned, TrustStore? store = null)
        {
            VerifiedFile file;
            try { file = SignatureVerifier.Verify(path, store ?? TrustStore.Machine); }
            catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.TrustStoreError)
            {
                // A trust list nobody can rely on trusts nobody: a refusal like any other, audited as one.
                var unknown = new PatchSignature(path, PatchSignature.SignatureFileFor(path), SignatureStatus.UntrustedPublisher, e.Message, FileSha256: "");
                string? id = null;
                try
                {
                    var bytes = MicropatchParser.ReadFile(path, out var fullPath);
                    unknown = unknown with { Path = fullPath, FileSha256 = SignatureVerifier.Sha256Hex(bytes) };
                    id = MicropatchParser.Parse(bytes, fullPath).Id;
                }
                catch (HotpatchException) { /* the untrusted list is the news */ }
                throw new PatchRefusedException(e.Kind, "Refused " + unknown.Path + ": " + e.Message + " Nothing was installed.", unknown, id);
            }
            var refusal = Refusal(file.Signature, allowUnsigned);
            if (refusal != null)
            {
                string? id = null;
                try { id = MicropatchParser.Parse(file.Bytes, file.FullPath).Id; }
                catch (HotpatchException) { /* the refusal is the news; an unparsable file simply has no id to log */ }
                throw new PatchRefusedException(refusal.Value, Message(file.Signature, refusal.Value), file.Signature, id);
            }
            var patch = MicropatchParser.Parse(file.Bytes, file.FullPath);
            patch.Signature = file.Signature;
            return patch;
        }

        /// <summary>The kind of refusal for a checked signature, or null if the file may be installed.</summary>
        public static HotpatchErrorKind? Refusal(PatchSignature s, bool allowUnsigned)
        {
            switch (s.Status)
            {
                case SignatureStatus.Valid: return null;
                case SignatureStatus.NotSigned: return allowUnsigned ? (HotpatchErrorKind?)null : HotpatchErrorKind.NotSigned;
                case SignatureStatus.HashMismatch: return HotpatchErrorKind.HashMismatch;
                case SignatureStatus.UntrustedPublisher: return HotpatchErrorKind.UntrustedPublisher;
                default: return HotpatchErrorKind.SignatureInvalid;
            }
        }

        private static string Message(PatchSignature s, HotpatchErrorKind kind)
        {
            string what = kind switch
            {
                HotpatchErrorKind.NotSigned => "is not signed",
                HotpatchErrorKind.HashMismatch => "was changed after it was signed",
                HotpatchErrorKind.UntrustedPublisher => "is signed by a publisher this machine does not trust",
                _ => "has a signature that is not valid (" + s.Status + ")",
            };
            return "Refused " + s.Path + ": the file " + what + ". " + s.StatusMessage + " Nothing was installed.";
        }
    }
}
