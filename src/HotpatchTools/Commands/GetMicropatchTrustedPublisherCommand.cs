using HotpatchTools.Engine.Trust;

namespace HotpatchTools.Commands
{
    /// <summary>The machine's trusted publishers of patch files.</summary>
    [Cmdlet(VerbsCommon.Get, "MicropatchTrustedPublisher")]
    [OutputType(typeof(MicropatchTrustedPublisher))]
    public sealed class GetMicropatchTrustedPublisherCommand : HotpatchCommandBase
    {
        /// <summary>Only these thumbprints (wildcards allowed).</summary>
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [SupportsWildcards]
        public string[]? Thumbprint { get; set; }

        // Objects piped in often share a thumbprint (Get-MicropatchSignature of files one publisher signed): each publisher once.
        private readonly HashSet<string> _written = new HashSet<string>(StringComparer.OrdinalIgnoreCase);

        protected override void ProcessRecord()
        {
            var patterns = Thumbprint?.Select(p => new WildcardPattern(p, WildcardOptions.IgnoreCase)).ToList();
            try
            {
                foreach (var p in TrustStore.Machine.List())
                    if ((patterns == null || patterns.Any(w => w.IsMatch(p.Thumbprint))) && _written.Add(p.Thumbprint))
                        WriteObject(MicropatchTrustedPublisher.From(p));
            }
            catch (HotpatchException e) { ThrowTerminatingError(ToErrorRecord(e, TrustStore.Machine.ListFile)); }
        }
    }
}
