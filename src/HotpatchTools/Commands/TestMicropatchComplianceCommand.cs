using HotpatchTools.Completion;
using HotpatchTools.Engine.Catalog;
using HotpatchTools.Engine.Format;

namespace HotpatchTools.Commands
{
    /// <summary>Answers "is this machine protected?": every enabled catalog patch installed wherever it applies.</summary>
    [Cmdlet(VerbsDiagnostic.Test, "MicropatchCompliance")]
    [OutputType(typeof(MicropatchCompliance), typeof(bool))]
    public sealed class TestMicropatchComplianceCommand : CatalogCommandBase
    {
        /// <summary>Only catalog entries whose id matches (wildcards); without it, every enabled entry.</summary>
        [Parameter(Position = 0)]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(CatalogPatchIdCompleter))]
        public string[]? PatchId { get; set; }

        /// <summary>Return only $true or $false, as Test-Connection -Quiet does.</summary>
        [Parameter]
        public SwitchParameter Quiet { get; set; }

        protected override void EndProcessing()
        {
            var problems = new List<string>();
            var patches = new List<Micropatch>();
            var entries = SelectEntries(PatchId, (folder, why) => problems.Add("Catalog folder " + folder + " is unreadable: " + why));
            if (PatchId != null)
                foreach (var id in PatchId.Where(i => !WildcardPattern.ContainsWildcardCharacters(i)))
                    if (!entries.Exists(e => string.Equals(e.PatchId, id, StringComparison.OrdinalIgnoreCase))) problems.Add(id + " is not registered in the catalog.");
            foreach (var e in entries.Where(e => e.Enabled))
            {
                var patch = LoadCatalogPatch(e);
                if (patch != null) patches.Add(patch);
                else problems.Add(e.PatchId + " cannot be loaded from the catalog.");
            }

            // Report only: a question must not change anything, so nothing is installed and nothing is asked.
            var pass = new Enforcer(Engine, WriteDebug).Run(patches, apply: false);
            bool elevated = HotpatchTools.Engine.Machine.Privilege.IsElevated();
            var report = Compliance.Assess(patches.Count, pass, problems, elevated);
            foreach (var r in pass.Results) WriteVerbose(r.PatchId + " in pid " + r.ProcessId + " (" + r.ProcessName + "): " + r.Outcome + ": " + r.Reason);
            if (Quiet)
            {
                WriteObject(report.Compliant);
                return;
            }
            WriteObject(new MicropatchCompliance
            {
                Compliant = report.Compliant, PatchCount = report.Patches, Patched = report.Patched, Vulnerable = report.Vulnerable, Failed = report.Failed,
                Mismatch = report.Mismatch, Unreadable = report.Unreadable, Elevated = elevated, Details = new FlatStringList(report.Details.ToArray()),
            });
        }
    }
}
