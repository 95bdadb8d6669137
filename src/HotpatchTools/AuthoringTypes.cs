using HotpatchTools.Engine.Authoring;

namespace HotpatchTools
{
    /// <summary>Test-Micropatch: one patch file checked against one module file on disk.</summary>
    public sealed class MicropatchTestResult
    {
        public string ComputerName { get; set; } = Environment.MachineName;
        public string PatchId { get; set; } = "";
        /// <summary>Applies, Mismatch (another build), Unsupported (a safety rule refuses a site) or NotApplicable (another module).</summary>
        public string Result { get; set; } = "";
        public string ModulePath { get; set; } = "";
        /// <summary>Why not, or where every check passed.</summary>
        public string Reason { get; set; } = "";
        /// <summary>The refusal's ErrorId (the same as Install-Micropatch's); empty when it applies.</summary>
        public string ErrorId { get; set; } = "";
        /// <summary>Each site and its cave's code as the engine would build it: patch code, relocated instructions, jump back.</summary>
        public FlatStringList Listing { get; set; } = new FlatStringList();
        public string PatchPath { get; set; } = "";

        internal static MicropatchTestResult From(OfflineCheckResult r, string patchPath) => new MicropatchTestResult
        {
            PatchId = r.PatchId, Result = r.State.ToString(), ModulePath = r.ModulePath, Reason = r.Reason,
            ErrorId = r.ErrorKind?.ToString() ?? "", Listing = new FlatStringList(r.Listing.ToArray()), PatchPath = patchPath,
        };
    }
}
