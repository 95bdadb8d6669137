using HotpatchTools.Engine.Audit;
using HotpatchTools.Engine.Trust;
// System.Management.Automation, open in every file of the module, has a SignatureStatus of its own.
using SignatureStatus = HotpatchTools.Engine.Trust.SignatureStatus;

namespace HotpatchTools
{
    // Flat snapshots, like OutputTypes.cs: strings, numbers and dates only (statuses as names of the engine's enums).

    /// <summary>Get-MicropatchSignature, Set-MicropatchSignature -PassThru.</summary>
    public sealed class MicropatchSignature
    {
        public string ComputerName { get; set; } = Environment.MachineName;
        public string Path { get; set; } = "";
        /// <summary>A <see cref="SignatureStatus"/> name.</summary>
        public string Status { get; set; } = "";
        /// <summary>True only when Status is Valid: intact, and signed by a publisher this machine trusts.</summary>
        public bool Trusted { get; set; }
        public string StatusMessage { get; set; } = "";
        public string Signer { get; set; } = "";
        public string Thumbprint { get; set; } = "";
        public DateTime? SigningTime { get; set; }
        public DateTime? NotAfter { get; set; }
        /// <summary>The thumbprint of the trusted publisher or root entry that vouched for the signer.</summary>
        public string TrustedBy { get; set; } = "";
        public string FileSha256 { get; set; } = "";
        public string SignaturePath { get; set; } = "";

        internal static MicropatchSignature From(PatchSignature s) => new MicropatchSignature
        {
            Path = s.Path, Status = s.Status.ToString(), Trusted = s.Trusted,
            StatusMessage = s.Status == SignatureStatus.UntrustedPublisher ? s.StatusMessage + " " + Commands.HotpatchCommandBase.TrustAdvice : s.StatusMessage, Signer = s.Signer ?? "", Thumbprint = s.Thumbprint ?? "", SigningTime = s.SigningTimeUtc?.ToLocalTime(),
            NotAfter = s.NotAfterUtc?.ToLocalTime(), TrustedBy = s.TrustedBy ?? "", FileSha256 = s.FileSha256, SignaturePath = s.SignaturePath,
        };
    }

    /// <summary>Get-MicropatchTrustedPublisher: one entry of the machine's trusted publishers.</summary>
    public sealed class MicropatchTrustedPublisher
    {
        public string ComputerName { get; set; } = Environment.MachineName;
        /// <summary>Publisher (this certificate) or Root (any code-signing certificate that chains to it).</summary>
        public string Kind { get; set; } = "";
        public string Thumbprint { get; set; } = "";
        public string Subject { get; set; } = "";
        public DateTime? NotAfter { get; set; }
        public DateTime AddedTime { get; set; }
        public string AddedBy { get; set; } = "";
        public string CertificatePath { get; set; } = "";

        internal static MicropatchTrustedPublisher From(TrustedPublisher p) => new MicropatchTrustedPublisher
        {
            Kind = p.Kind.ToString(), Thumbprint = p.Thumbprint, Subject = p.Subject, NotAfter = p.NotAfterUtc?.ToLocalTime(),
            AddedTime = p.AddedUtc.ToLocalTime(), AddedBy = p.AddedBy, CertificatePath = p.CertificatePath,
        };
    }

    /// <summary>Get-MicropatchAuditLog: one install, uninstall, refusal or trust change.</summary>
    public sealed class MicropatchAuditRecord
    {
        public DateTime Time { get; set; }
        public string ComputerName { get; set; } = "";
        public string User { get; set; } = "";
        public string ConnectedUser { get; set; } = "";
        public string Action { get; set; } = "";
        /// <summary>Installed, Removed, Refused, Failed or Added.</summary>
        public string Result { get; set; } = "";
        public string PatchId { get; set; } = "";
        public int? ProcessId { get; set; }
        public string ProcessName { get; set; } = "";
        public string Module { get; set; } = "";
        public string FileSha256 { get; set; } = "";
        public string Path { get; set; } = "";
        public string Signer { get; set; } = "";
        public string Thumbprint { get; set; } = "";
        public string SignatureStatus { get; set; } = "";
        public string ErrorId { get; set; } = "";
        public string Error { get; set; } = "";

        internal static MicropatchAuditRecord From(AuditRecord r) => new MicropatchAuditRecord
        {
            Time = r.TimeUtc.ToLocalTime(), ComputerName = r.Host, User = r.User, ConnectedUser = r.ConnectedUser ?? "", Action = r.ActionName, Result = r.Result.ToString(),
            PatchId = r.PatchId ?? "", ProcessId = r.ProcessId, ProcessName = r.ProcessName ?? "", Module = r.Module ?? "", FileSha256 = r.FileSha256 ?? "",
            Path = r.Path ?? "", Signer = r.Signer ?? "", Thumbprint = r.Thumbprint ?? "", SignatureStatus = r.SignatureStatus ?? "", ErrorId = r.ErrorId ?? "", Error = r.Error ?? "",
        };
    }
}
