namespace HotpatchTools.Completion
{
    /// <summary>What the completers share: the word as typed, the session's current folder, quoting.</summary>
    internal static class CompletionText
    {
        /// <summary>The typed word without the quote the user may have opened (and closed) it with.</summary>
        internal static string Unquote(string? word)
        {
            if (string.IsNullOrEmpty(word)) return "";
            char first = word![0];
            if (first != '\'' && first != '"') return word;
            int end = word.Length > 1 && word[word.Length - 1] == first ? word.Length - 1 : word.Length;
            return word.Substring(1, end - 1);
        }

        /// <summary>What an id offered must match: it starts with the typed word, ignoring case.</summary>
        internal static WildcardPattern StartsWith(string? word) => new WildcardPattern(Unquote(word) + "*", WildcardOptions.IgnoreCase);

        /// <summary>The text as one argument: single-quoted when PowerShell would otherwise split or expand it.</summary>
        internal static string Quote(string text) =>
            text.Length > 0 && text.IndexOfAny(" \t'\"`$&@(){};,|<>#".ToCharArray()) < 0 ? text : "'" + text.Replace("'", "''") + "'";

        /// <summary>
        /// The current file-system folder of the session the completion runs in (not the process's current
        /// directory); null when there is no session or its language mode allows no script (JEA).
        /// </summary>
        internal static string? SessionDirectory()
        {
            try
            {
                // SessionStateProxy refuses calls while the completion's own pipeline runs; a nested one on this thread may read it.
                using (var ps = PowerShell.Create(RunspaceMode.CurrentRunspace))
                {
                    var path = ps.AddScript("$ExecutionContext.SessionState.Path.CurrentFileSystemLocation.ProviderPath").Invoke<string>().FirstOrDefault();
                    return string.IsNullOrEmpty(path) ? null : path;
                }
            }
            catch (Exception e) when (e is InvalidOperationException || e is RuntimeException)
            {
                return null;
            }
        }
    }
}
