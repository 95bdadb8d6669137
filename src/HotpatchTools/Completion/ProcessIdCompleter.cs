using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using HotpatchTools.Engine;
using HotpatchTools.Engine.Patching;
using HotpatchTools.Engine.Platform;

namespace HotpatchTools.Completion
{
    /// <summary>-ProcessId: running processes whose id starts with what was typed, each shown with its name.</summary>
    public sealed class ProcessIdCompleter : IArgumentCompleter
    {
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            IReadOnlyList<ProcessInfo> processes;
            try
            {
                processes = HotpatchEngine.CurrentPlatform().ListProcesses();
            }
            // An unsupported platform or an unreadable process list: nothing to offer, and completion must not fail.
            catch (Exception e) when (e is HotpatchException || e is IOException || e is UnauthorizedAccessException)
            {
                return Enumerable.Empty<CompletionResult>();
            }
            string typed = CompletionText.Unquote(wordToComplete);
            var results = new List<CompletionResult>();
            foreach (var p in processes)
            {
                string id = p.Id.ToString(CultureInfo.InvariantCulture);
                if (!id.StartsWith(typed, StringComparison.Ordinal)) continue;
                // CompletionResult refuses an empty tooltip.
                string name = p.Name.Length > 0 ? p.Name : "?";
                results.Add(new CompletionResult(id, id + " (" + name + ")", CompletionResultType.ParameterValue, name));
            }
            return results;
        }
    }
}
