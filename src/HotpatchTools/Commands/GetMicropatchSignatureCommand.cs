using HotpatchTools.Completion;
using HotpatchTools.Engine.Trust;

namespace HotpatchTools.Commands
{
    /// <summary>Checks patch files' signatures against this machine's trusted publishers.</summary>
    [Cmdlet(VerbsCommon.Get, "MicropatchSignature")]
    [OutputType(typeof(MicropatchSignature))]
    public sealed class GetMicropatchSignatureCommand : HotpatchCommandBase
    {
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("FullName", "PSPath")]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(MicropatchPathCompleter))]
        public string[] Path { get; set; } = new string[0];

        // Objects piped in often share a file (Get-HotpatchTarget lists a patch file once per process): each file is read and written once.
        private readonly HashSet<string> _seen = new HashSet<string>(StringComparer.Ordinal);

        protected override void ProcessRecord()
        {
            foreach (var file in ResolvePaths(Path, literal: false))
            {
                if (!_seen.Add(file)) continue;
                try { WriteObject(MicropatchSignature.From(SignatureVerifier.Verify(file, TrustStore.Machine).Signature)); }
                catch (HotpatchException e) { WriteFailure(e, file); }
            }
        }
    }
}
