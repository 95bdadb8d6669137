using System.Runtime.InteropServices;
using System.Security;
using System.Security.Cryptography.X509Certificates;
using HotpatchTools.Completion;
using HotpatchTools.Engine.Trust;

namespace HotpatchTools.Commands
{
    /// <summary>Signs patch files: a detached CMS signature over the exact bytes, written to &lt;file&gt;.sig.</summary>
    [Cmdlet(VerbsCommon.Set, "MicropatchSignature", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = CertificateSet)]
    [OutputType(typeof(MicropatchSignature))]
    public sealed class SetMicropatchSignatureCommand : HotpatchCommandBase
    {
        private const string CertificateSet = "Certificate";
        private const string PfxSet = "Pfx";
        private X509Certificate2? _certificate;

        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("FullName", "PSPath")]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(MicropatchPathCompleter))]
        public string[] Path { get; set; } = new string[0];

        /// <summary>A code-signing certificate with its private key, e.g. from Cert:\CurrentUser\My -CodeSigningCert.</summary>
        [Parameter(Mandatory = true, Position = 1, ParameterSetName = CertificateSet)]
        [ValidateNotNull]
        public X509Certificate2? Certificate { get; set; }

        [Parameter(Mandatory = true, ParameterSetName = PfxSet)]
        [ValidateNotNullOrEmpty]
        public string PfxPath { get; set; } = "";

        [Parameter(ParameterSetName = PfxSet)]
        public SecureString? PfxPassword { get; set; }

        [Parameter]
        public SwitchParameter Force { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void BeginProcessing()
        {
            if (ParameterSetName == CertificateSet) { _certificate = Certificate; return; }
            var pfx = SessionState.Path.GetUnresolvedProviderPathFromPSPath(PfxPath);
            // Else the engine's SignatureInvalid (SecurityError) reports a mistyped path as a signing problem.
            if (System.IO.Directory.Exists(pfx))
                ThrowTerminatingError(new ErrorRecord(new System.IO.IOException(pfx + " is a folder, not a PFX file."), "PfxFileIsFolder", ErrorCategory.InvalidArgument, PfxPath));
            if (!System.IO.File.Exists(pfx))
                ThrowTerminatingError(new ErrorRecord(new ItemNotFoundException("The PFX file " + pfx + " does not exist."), "PfxFileNotFound", ErrorCategory.ObjectNotFound, PfxPath));
            try { _certificate = PatchSigner.LoadPfx(pfx, Plain(PfxPassword)); }
            catch (HotpatchException e) { ThrowTerminatingError(ToErrorRecord(e, PfxPath)); }
        }

        protected override void ProcessRecord()
        {
            var cert = _certificate!;
            foreach (var file in ResolvePaths(Path, literal: false))
            {
                if (!ShouldWrite(Force, file, "Sign with " + cert.Subject + " (thumbprint " + cert.Thumbprint + ")")) continue;
                try
                {
                    var sig = PatchSigner.Sign(file, cert);
                    WriteVerbose("Wrote " + sig);
                    if (PassThru) WriteObject(MicropatchSignature.From(SignatureVerifier.Verify(file, TrustStore.Machine).Signature));
                }
                catch (HotpatchException e) { WriteFailure(e, file); }
                catch (Exception e) when (e is System.IO.IOException || e is UnauthorizedAccessException)
                {
                    WriteError(new ErrorRecord(e, "SignatureNotWritten", ErrorCategory.WriteError, file));
                }
            }
        }

        private static string? Plain(SecureString? s)
        {
            if (s == null) return null;
            var p = Marshal.SecureStringToGlobalAllocUnicode(s);
            try { return Marshal.PtrToStringUni(p); }
            finally { Marshal.ZeroFreeGlobalAllocUnicode(p); }
        }
    }
}
