using HotpatchTools.Completion;
using HotpatchTools.Engine.Audit;

namespace HotpatchTools.Commands
{
    /// <summary>Reads the machine's audit log (or another audit file) back as objects, oldest first.</summary>
    [Cmdlet(VerbsCommon.Get, "MicropatchAuditLog")]
    [OutputType(typeof(MicropatchAuditRecord))]
    public sealed class GetMicropatchAuditLogCommand : HotpatchCommandBase
    {
        /// <summary>Only records of these patch ids (wildcards allowed).</summary>
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [SupportsWildcards]
        [ArgumentCompleter(typeof(PatchIdCompleter))]
        public string[]? PatchId { get; set; }

        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(1, int.MaxValue)]
        [ArgumentCompleter(typeof(ProcessIdCompleter))]
        public int[]? ProcessId { get; set; }

        [Parameter]
        [ValidateSet("Installed", "Removed", "Refused", "Failed", "Added", IgnoreCase = true)]
        public string[]? Result { get; set; }

        [Parameter]
        [ValidateSet("Install", "Uninstall", "AddTrustedPublisher", "RemoveTrustedPublisher", IgnoreCase = true)]
        public string[]? Action { get; set; }

        [Parameter]
        public DateTime? After { get; set; }

        [Parameter]
        public DateTime? Before { get; set; }

        /// <summary>Only the last N records that pass the other filters.</summary>
        [Parameter]
        [ValidateRange(1, int.MaxValue)]
        public int? Last { get; set; }

        /// <summary>An audit file other than the machine's, e.g. one copied from another computer.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? Path { get; set; }

        // By line in the log: objects piped in (Get-Micropatch | Get-MicropatchAuditLog) each select records, and the
        // output is still each record once, oldest first, so that -Last takes the newest of them all.
        private readonly SortedDictionary<int, MicropatchAuditRecord> _matches = new SortedDictionary<int, MicropatchAuditRecord>();
        private List<AuditRecord>? _records;
        private bool _unreadable;

        protected override void ProcessRecord()
        {
            if (_records == null)
            {
                // One error for an unreadable log, not one per piped object.
                if (_unreadable) return;
                if (!Read()) { _unreadable = true; return; }
            }
            var patterns = PatchId?.Select(p => new WildcardPattern(p, WildcardOptions.IgnoreCase)).ToList();
            DateTime? after = After?.ToUniversalTime(), before = Before?.ToUniversalTime();
            for (int i = 0; i < _records!.Count; i++)
            {
                var r = _records[i];
                if (patterns != null && (r.PatchId == null || !patterns.Any(w => w.IsMatch(r.PatchId)))) continue;
                if (ProcessId != null && (r.ProcessId == null || !ProcessId.Contains(r.ProcessId.Value))) continue;
                if (Result != null && !Result.Contains(r.Result.ToString(), StringComparer.OrdinalIgnoreCase)) continue;
                if (Action != null && !Action.Contains(r.ActionName, StringComparer.OrdinalIgnoreCase)) continue;
                if (after != null && r.TimeUtc < after) continue;
                if (before != null && r.TimeUtc > before) continue;
                if (!_matches.ContainsKey(i)) _matches[i] = MicropatchAuditRecord.From(r);
            }
        }

        /// <summary>The log, once per command; false (and an error record) when it cannot be read.</summary>
        private bool Read()
        {
            var log = Path == null ? AuditLog.Machine : new AuditLog(SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path));
            if (Path != null && System.IO.Directory.Exists(log.Path))
            {
                WriteError(new ErrorRecord(new System.IO.IOException(log.Path + " is a folder, not an audit file; name the file, for example "
                    + System.IO.Path.Combine(log.Path, System.IO.Path.GetFileName(AuditLog.Machine.Path)) + "."), "AuditLogIsFolder", ErrorCategory.InvalidArgument, Path));
                return false;
            }
            if (Path != null && !System.IO.File.Exists(log.Path))
            {
                WriteError(new ErrorRecord(new ItemNotFoundException("The audit file " + log.Path + " does not exist."), "AuditLogNotFound", ErrorCategory.ObjectNotFound, Path));
                return false;
            }
            int unreadable;
            try { _records = log.Read(out unreadable); }
            catch (Exception e) when (e is System.IO.IOException || e is UnauthorizedAccessException)
            {
                WriteError(new ErrorRecord(e, "AuditLogUnreadable", ErrorCategory.ReadError, log.Path));
                return false;
            }
            if (unreadable > 0) WriteWarning(log.Path + " has " + unreadable + " line(s) that are not audit records; they were skipped.");
            return true;
        }

        protected override void EndProcessing()
        {
            int skip = Last == null ? 0 : Math.Max(0, _matches.Count - Last.Value);
            foreach (var m in _matches.Values.Skip(skip)) WriteObject(m);
        }
    }
}
