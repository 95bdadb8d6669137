namespace HotpatchTools.Engine.Catalog
{
    /// <summary>"Is this machine protected?" from one report-only enforcement pass.</summary>
    public sealed class ComplianceReport
    {
        public bool Compliant { get; set; }
        public int Patches { get; set; }
        public int Patched { get; set; }
        public int Vulnerable { get; set; }
        public int Failed { get; set; }
        public int Mismatch { get; set; }
        public int Unreadable { get; set; }
        /// <summary>One line per reason the machine is not compliant, then notes.</summary>
        public List<string> Details { get; } = new List<string>();
    }

    public static class Compliance
    {
        /// <summary>
        /// Compliant when the host can see every process (elevated), every catalog entry loaded, and no process
        /// with a patch's module is left vulnerable or failed. A process of another build (Mismatch) is not
        /// counted against the machine: that patch does not apply to it.
        /// </summary>
        public static ComplianceReport Assess(int patchCount, EnforcementPass pass, IEnumerable<string> catalogProblems, bool elevated)
        {
            var r = new ComplianceReport
            {
                Patches = patchCount,
                Patched = pass.Results.Count(x => x.Outcome == EnforcementOutcome.AlreadyPatched || x.Outcome == EnforcementOutcome.Applied || x.Outcome == EnforcementOutcome.Superseded),
                Vulnerable = pass.Results.Count(x => x.Outcome == EnforcementOutcome.Vulnerable),
                Failed = pass.Results.Count(x => x.Outcome == EnforcementOutcome.Failed),
                Mismatch = pass.Results.Count(x => x.Outcome == EnforcementOutcome.Mismatch),
                Unreadable = pass.Unreadable,
            };
            if (!elevated) r.Details.Add("Not elevated: processes of other users cannot be inspected, so protection cannot be confirmed.");
            r.Details.AddRange(catalogProblems);
            foreach (var x in pass.Results.Where(x => x.Outcome == EnforcementOutcome.Vulnerable || x.Outcome == EnforcementOutcome.Failed))
                r.Details.Add(x.PatchId + " " + x.Outcome + " in pid " + x.ProcessId + " (" + x.ProcessName + ")" + (x.ErrorKind != null ? ": " + x.ErrorKind : ""));
            r.Compliant = elevated && r.Details.Count == 0;
            if (patchCount == 0) r.Details.Add("Note: no enabled patch in the catalog.");
            if (r.Unreadable > 0) r.Details.Add("Note: " + r.Unreadable + " process(es) could not be read.");
            return r;
        }
    }
}
