using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using HotpatchTools.Engine.Audit;
using HotpatchTools.Engine.Trust;

namespace HotpatchTools.Commands
{
    /// <summary>Trusts a publisher's certificate (or a CA root of publishers) for patch files on this machine.</summary>
    [Cmdlet(VerbsCommon.Add, "MicropatchTrustedPublisher", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = CertificateSet)]
    [OutputType(typeof(MicropatchTrustedPublisher))]
    public sealed class AddMicropatchTrustedPublisherCommand : HotpatchCommandBase
    {
        private const string CertificateSet = "Certificate";
        private const string PathSet = "Path";
        private const string ThumbprintSet = "Thumbprint";

        [Parameter(Mandatory = true, Position = 0, ParameterSetName = CertificateSet, ValueFromPipeline = true)]
        [ValidateNotNull]
        public X509Certificate2[] Certificate { get; set; } = new X509Certificate2[0];

        /// <summary>A certificate file (.cer, DER or Base64).</summary>
        [Parameter(Mandatory = true, ParameterSetName = PathSet)]
        [ValidateNotNullOrEmpty]
        public string Path { get; set; } = "";

        [Parameter(Mandatory = true, ParameterSetName = ThumbprintSet, ValueFromPipelineByPropertyName = true)]
        [ValidateNotNullOrEmpty]
        public string[] Thumbprint { get; set; } = new string[0];

        /// <summary>Trust every code-signing certificate that chains to this CA certificate, not just the certificate itself.</summary>
        [Parameter]
        public SwitchParameter Root { get; set; }

        [Parameter]
        public SwitchParameter Force { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void BeginProcessing() => RequireElevationAndAudit("Adding a trusted publisher");

        protected override void ProcessRecord()
        {
            var kind = Root ? TrustKind.Root : TrustKind.Publisher;
            if (ParameterSetName == ThumbprintSet)
            {
                foreach (var t in Thumbprint)
                {
                    // The store's copy gives the entry its subject, and a root needs its certificate to build chains.
                    var cert = FindInStores(t);
                    if (cert != null) { Add(cert, kind); continue; }
                    if (Root)
                    {
                        WriteError(new ErrorRecord(new ItemNotFoundException("No certificate with thumbprint " + t + " is in a certificate store here; a root must be given as a certificate (-Certificate or -Path)."),
                            "CertificateNotFound", ErrorCategory.ObjectNotFound, t));
                        continue;
                    }
                    Run(t, "Trust publisher with thumbprint " + t, store => store.AddThumbprint(t));
                }
                return;
            }
            if (ParameterSetName == PathSet)
            {
                var file = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
                // The crypto library's own messages ("BIO routines::no such file", "Error occurred during a cryptographic
                // operation") name neither the file nor what is wrong with it.
                if (System.IO.Directory.Exists(file))
                {
                    WriteError(new ErrorRecord(new System.IO.IOException(file + " is a folder, not a certificate file (.cer, DER or Base64)."), "CertificateIsFolder", ErrorCategory.InvalidArgument, Path));
                    return;
                }
                if (!System.IO.File.Exists(file))
                {
                    WriteError(new ErrorRecord(new ItemNotFoundException("The certificate file " + file + " does not exist."), "CertificateNotFound", ErrorCategory.ObjectNotFound, Path));
                    return;
                }
                X509Certificate2 cert;
                try { cert = new X509Certificate2(file); }
                catch (CryptographicException e)
                {
                    WriteError(new ErrorRecord(new CryptographicException(file + " is not a certificate file (.cer, DER or Base64): " + e.Message, e), "CertificateUnreadable", ErrorCategory.InvalidData, Path));
                    return;
                }
                Add(cert, kind);
                return;
            }
            foreach (var cert in Certificate) Add(cert, kind);
        }

        private void Add(X509Certificate2 cert, TrustKind kind) =>
            Run(cert.Thumbprint, "Trust " + (kind == TrustKind.Root ? "every code-signing certificate issued under " : "patch files signed by ") + cert.Subject + " (thumbprint " + cert.Thumbprint + ")",
                store => store.Add(cert, kind));

        private void Run(string target, string action, Func<TrustStore, TrustedPublisher> add)
        {
            if (!ShouldWrite(Force, target, action)) return;
            try
            {
                var entry = add(TrustStore.Machine);
                RecordAudit(new AuditRecord { Action = AuditAction.AddTrustedPublisher, Result = AuditResult.Added, Thumbprint = entry.Thumbprint, Signer = entry.Subject, SignatureStatus = entry.Kind.ToString() });
                if (PassThru) WriteObject(MicropatchTrustedPublisher.From(entry));
            }
            catch (HotpatchException e) { WriteFailure(e, target); }
            catch (Exception e) when (e is System.IO.IOException || e is UnauthorizedAccessException)
            {
                WriteError(new ErrorRecord(e, "TrustStoreNotWritten", ErrorCategory.WriteError, target));
            }
        }

        private static X509Certificate2? FindInStores(string thumbprint)
        {
            string t;
            try { t = TrustStore.NormalizeThumbprint(thumbprint); } catch (HotpatchException) { return null; }
            var places = new List<(StoreName, StoreLocation)>
            {
                (StoreName.TrustedPublisher, StoreLocation.LocalMachine), (StoreName.My, StoreLocation.LocalMachine),
                (StoreName.Root, StoreLocation.LocalMachine), (StoreName.My, StoreLocation.CurrentUser), (StoreName.TrustedPublisher, StoreLocation.CurrentUser),
            };
            foreach (var (name, location) in places)
            {
                // Linux has only some of these stores; a store that cannot be opened simply has nothing to offer.
                try
                {
                    using (var store = new X509Store(name, location))
                    {
                        store.Open(OpenFlags.ReadOnly | OpenFlags.OpenExistingOnly);
                        var found = store.Certificates.Find(X509FindType.FindByThumbprint, t, validOnly: false);
                        if (found.Count > 0) return found[0];
                    }
                }
                catch (CryptographicException) { }
                catch (PlatformNotSupportedException) { }
            }
            return null;
        }
    }
}
