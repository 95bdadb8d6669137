using System.Collections;
using System.IO;
using System.Management.Automation.Language;

namespace HotpatchTools.Completion
{
    /// <summary>-Path: micropatch files (*.micropatch.yaml) whose name starts with what was typed, and folders to walk into.</summary>
    public sealed class MicropatchPathCompleter : IArgumentCompleter
    {
        internal const string Extension = ".micropatch.yaml";

        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            var session = CompletionText.SessionDirectory();
            if (session == null) return Enumerable.Empty<CompletionResult>();
            string typed = CompletionText.Unquote(wordToComplete);
            // The folder part stays as typed, so a relative path completes to a relative path.
            int split = typed.LastIndexOfAny(new[] { '/', '\\' }) + 1;
            string typedFolder = typed.Substring(0, split), prefix = typed.Substring(split);
            bool fromHome = typedFolder.StartsWith("~/", StringComparison.Ordinal) || typedFolder.StartsWith("~\\", StringComparison.Ordinal);

            var results = new List<CompletionResult>();
            try
            {
                string folder = fromHome
                    ? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile) + typedFolder.Substring(1)
                    : Path.Combine(session, typedFolder);
                foreach (var entry in new DirectoryInfo(folder).EnumerateFileSystemInfos())
                {
                    bool isFolder = entry is DirectoryInfo;
                    // PowerShell completes case-insensitively, also on Linux where the file system does not.
                    if (!entry.Name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) continue;
                    if (!isFolder && !entry.Name.EndsWith(Extension, StringComparison.OrdinalIgnoreCase)) continue;
                    // -Path takes wildcards: a literal [ or * in a name must not become one.
                    string text = CompletionText.Quote(typedFolder + WildcardPattern.Escape(entry.Name));
                    results.Add(new CompletionResult(text, entry.Name,
                        isFolder ? CompletionResultType.ProviderContainer : CompletionResultType.ProviderItem, entry.FullName));
                }
            }
            // A folder that does not exist, cannot be read or is no valid path has nothing to offer.
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException || e is ArgumentException || e is NotSupportedException) { }
            return results.OrderBy(r => r.ListItemText, StringComparer.OrdinalIgnoreCase).ToList();
        }
    }
}
