namespace HotpatchTools.Engine.Catalog
{
    /// <summary>"Is this machine protected?" from one report-only enforcement pass.</summary>
    /// <param name="Details">One line per reason the machine is not compliant, then notes.</param>
    public sealed record ComplianceReport(bool Compliant, int Patches, int Patched, int Vulnerable, int Failed, int Mismatch, int Unreadable, List<string> Details);

    public static class Compliance
    {
        /// <summary>
        /// Compliant when the host can see every process (elevated), every catalog entry loaded, and no process
        /// with a patch's module is left vulnerable or failed. A process of another build (Mismatch) is not
        /// counted against the machine: that patch does not apply to it.
        /// </summary>
        public static ComplianceReport Assess(int patchCount, EnforcementPass pass, IEnumerable<string> catalogProblems, bool elevated)
        {
            var details = new List<string>();
            if (!elevated) details.Add("Not elevated: processes of other users cannot be inspected, so protection cannot be confirmed.");
            details.AddRange(catalogProblems);
            foreach (var x in pass.Results.Where(x => x.Outcome == EnforcementOutcome.Vulnerable || x.Outcome == EnforcementOutcome.Failed))
                details.Add(x.PatchId + " " + x.Outcome + " in pid " + x.ProcessId + " (" + x.ProcessName + ")" + (x.ErrorKind != null ? ": " + x.ErrorKind : ""));
            bool compliant = elevated && details.Count == 0;
            if (patchCount == 0) details.Add("Note: no enabled patch in the catalog.");
            if (pass.Unreadable > 0) details.Add("Note: " + pass.Unreadable + " process(es) could not be read.");
            return new ComplianceReport(
                compliant, patchCount,
                Patched: pass.Results.Count(x => x.Outcome == EnforcementOutcome.AlreadyPatched || x.Outcome == EnforcementOutcome.Applied || x.Outcome == EnforcementOutcome.Superseded),
                Vulnerable: pass.Results.Count(x => x.Outcome == EnforcementOutcome.Vulnerable),
                Failed: pass.Results.Count(x => x.Outcome == EnforcementOutcome.Failed),
                Mismatch: pass.Results.Count(x => x.Outcome == EnforcementOutcome.Mismatch),
                Unreadable: pass.Unreadable,
                details);
        }
    }
}
