using HotpatchTools.Completion;
using HotpatchTools.Engine.Inspection;

namespace HotpatchTools.Commands
{
    /// <summary>Where each patchlet of a patch lands in a process, what install would do there, and the code there now.</summary>
    [Cmdlet(VerbsCommon.Get, "MicropatchSite", DefaultParameterSetName = PathSet)]
    [OutputType(typeof(MicropatchSite))]
    public sealed class GetMicropatchSiteCommand : HotpatchCommandBase
    {
        private const string PathSet = "Path";
        private const string PatchIdSet = "PatchId";

        [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipelineByPropertyName = true)]
        [Alias("FullName", "PSPath")]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(MicropatchPathCompleter))]
        public string Path { get; set; } = "";

        /// <summary>Installed patches, read from their caves: what Get-Micropatch lists.</summary>
        [Parameter(Mandatory = true, ParameterSetName = PatchIdSet, ValueFromPipelineByPropertyName = true)]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(PatchIdCompleter))]
        public string[] PatchId { get; set; } = new string[0];

        [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
        [Alias("Id", "PID")]
        [ValidateRange(1, int.MaxValue)]
        [ArgumentCompleter(typeof(ProcessIdCompleter))]
        public int[] ProcessId { get; set; } = new int[0];

        /// <summary>Folders with separate debug files, searched before /usr/lib/debug and HOTPATCH_DEBUG_DIRECTORY.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string[]? DebugDirectory { get; set; }

        protected override void ProcessRecord()
        {
            using var debug = UseDebugDirectories(DebugDirectory);
            var inspector = new ProcessInspector(Engine.Platform);
            if (ParameterSetName == PatchIdSet)
            {
                var patterns = PatchId.Select(p => new WildcardPattern(p, WildcardOptions.IgnoreCase)).ToList();
                foreach (int pid in ProcessId)
                {
                    try
                    {
                        var sites = inspector.GetInstalledSites(pid, id => patterns.Any(w => w.IsMatch(id)));
                        if (sites.Count == 0)
                            WriteFailure(new HotpatchException(HotpatchErrorKind.NotInstalled, "No patch " + string.Join(", ", PatchId) + " is installed in process " + pid + ".") { ProcessId = pid }, pid);
                        foreach (var s in sites) WriteObject(MicropatchSite.From(s));
                    }
                    catch (HotpatchException e) { WriteFailure(e, pid); }
                }
                return;
            }

            var file = ResolvePaths(new[] { Path }, literal: false).FirstOrDefault();
            if (file == null) return;
            // Read-only, like Get-HotpatchTarget: showing where a patch would land checks no signature.
            var patch = ReadPatch(file);
            if (patch == null) return;
            foreach (int pid in ProcessId)
            {
                try
                {
                    foreach (var s in inspector.GetSites(patch, pid)) WriteObject(MicropatchSite.From(s));
                }
                catch (HotpatchException e) { WriteFailure(e, pid); }
            }
        }
    }
}
