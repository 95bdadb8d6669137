using HotpatchTools.Engine.Audit;
using HotpatchTools.Engine.Trust;

namespace HotpatchTools.Commands
{
    /// <summary>Stops trusting a publisher or root: files it signed are refused from then on.</summary>
    [Cmdlet(VerbsCommon.Remove, "MicropatchTrustedPublisher", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
    [OutputType(typeof(MicropatchTrustedPublisher))]
    public sealed class RemoveMicropatchTrustedPublisherCommand : HotpatchCommandBase
    {
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [ValidateNotNullOrEmpty]
        public string[] Thumbprint { get; set; } = new string[0];

        [Parameter]
        public SwitchParameter Force { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void BeginProcessing() => RequireElevationAndAudit("Removing a trusted publisher");

        protected override void ProcessRecord()
        {
            foreach (var t in Thumbprint)
            {
                if (!ShouldWrite(Force, t, "Stop trusting patch files signed by (or under) the certificate with thumbprint " + t)) continue;
                try
                {
                    var removed = TrustStore.Machine.Remove(t);
                    if (removed == null)
                    {
                        WriteError(new ErrorRecord(new ItemNotFoundException("No trusted publisher has the thumbprint " + t + "."), "PublisherNotFound", ErrorCategory.ObjectNotFound, t));
                        continue;
                    }
                    RecordAudit(new AuditRecord { Action = AuditAction.RemoveTrustedPublisher, Result = AuditResult.Removed, Thumbprint = removed.Thumbprint, Signer = removed.Subject, SignatureStatus = removed.Kind.ToString() });
                    if (PassThru) WriteObject(MicropatchTrustedPublisher.From(removed));
                }
                catch (HotpatchException e) { WriteFailure(e, t); }
                catch (Exception e) when (e is System.IO.IOException || e is UnauthorizedAccessException)
                {
                    WriteError(new ErrorRecord(e, "TrustStoreNotWritten", ErrorCategory.WriteError, t));
                }
            }
        }
    }
}
