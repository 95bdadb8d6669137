using System.Collections;
using System.IO;
using System.Management.Automation.Language;
using HotpatchTools.Engine.Catalog;

namespace HotpatchTools.Completion
{
    /// <summary>-PatchId of the catalog cmdlets: the ids registered in the machine catalog, with title and state.</summary>
    public sealed class CatalogPatchIdCompleter : IArgumentCompleter
    {
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            var match = CompletionText.StartsWith(wordToComplete);
            IReadOnlyList<CatalogEntry> entries;
            try { entries = new MicropatchCatalog().List(); }
            // An unreadable catalog has nothing to offer, and completion must not fail.
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException) { return Enumerable.Empty<CompletionResult>(); }
            return entries.Where(e => match.IsMatch(e.PatchId))
                .Select(e => new CompletionResult(e.PatchId, e.PatchId, CompletionResultType.ParameterValue,
                    e.Title + " (" + e.Module + ", " + (e.Enabled ? "enabled" : "disabled") + ")"))
                .ToList();
        }
    }
}
