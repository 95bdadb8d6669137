using System.Collections;
using System.Management.Automation.Language;

namespace HotpatchTools.Completion
{
    /// <summary>What the -PatchId completers share: the ids that start with the typed word, each with a tooltip saying where it is.</summary>
    public abstract class PatchIdCompleterBase : IArgumentCompleter
    {
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            var match = CompletionText.StartsWith(wordToComplete);
            return Candidates(fakeBoundParameters).Where(c => match.IsMatch(c.Id))
                .Select(c => new CompletionResult(c.Id, c.Id, CompletionResultType.ParameterValue, c.Tooltip))
                .ToList();
        }

        /// <summary>Every id on offer, once each; completion must not fail, so an unreadable source offers nothing.</summary>
        private protected abstract IEnumerable<(string Id, string Tooltip)> Candidates(IDictionary? fakeBoundParameters);
    }
}
