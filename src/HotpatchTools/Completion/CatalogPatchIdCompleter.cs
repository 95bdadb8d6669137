using System.Collections;
using System.IO;
using HotpatchTools.Engine.Catalog;

namespace HotpatchTools.Completion
{
    /// <summary>-PatchId of the catalog cmdlets: the ids registered in the machine catalog, with title and state.</summary>
    public sealed class CatalogPatchIdCompleter : PatchIdCompleterBase
    {
        private protected override IEnumerable<(string Id, string Tooltip)> Candidates(IDictionary? fakeBoundParameters)
        {
            IReadOnlyList<CatalogEntry> entries;
            try { entries = new MicropatchCatalog().List(); }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException) { return Enumerable.Empty<(string, string)>(); }
            return entries.Select(e => (e.PatchId, e.Title + " (" + e.Module + ", " + (e.Enabled ? "enabled" : "disabled") + ")"));
        }
    }
}
