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

        private readonly List<MicropatchAuditRecord> _matches = new List<MicropatchAuditRecord>();

        protected override void ProcessRecord()
        {
            var log = Path == null ? AuditLog.Machine : new AuditLog(SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path));
            if (Path != null && !System.IO.File.Exists(log.Path))
            {
                WriteError(new ErrorRecord(new ItemNotFoundException("The audit file " + log.Path + " does not exist."), "AuditLogNotFound", ErrorCategory.ObjectNotFound, Path));
                return;
            }
            List<AuditRecord> records;
            int unreadable;
            try { records = log.Read(out unreadable); }
            catch (Exception e) when (e is System.IO.IOException || e is UnauthorizedAccessException)
            {
                WriteError(new ErrorRecord(e, "AuditLogUnreadable", ErrorCategory.ReadError, log.Path));
                return;
            }
            if (unreadable > 0) WriteWarning(log.Path + " has " + unreadable + " line(s) that are not audit records; they were skipped.");
            var patterns = PatchId?.Select(p => new WildcardPattern(p, WildcardOptions.IgnoreCase)).ToList();
            DateTime? after = After?.ToUniversalTime(), before = Before?.ToUniversalTime();
            foreach (var r in records)
            {
                if (patterns != null && (r.PatchId == null || !patterns.Any(w => w.IsMatch(r.PatchId)))) continue;
                if (ProcessId != null && (r.ProcessId == null || !ProcessId.Contains(r.ProcessId.Value))) continue;
                if (Result != null && !Result.Contains(r.Result.ToString(), StringComparer.OrdinalIgnoreCase)) continue;
                if (Action != null && !Action.Contains(r.ActionName, StringComparer.OrdinalIgnoreCase)) continue;
                if (after != null && r.TimeUtc < after) continue;
                if (before != null && r.TimeUtc > before) continue;
                _matches.Add(MicropatchAuditRecord.From(r));
            }
        }

        protected override void EndProcessing()
        {
            int skip = Last == null ? 0 : Math.Max(0, _matches.Count - Last.Value);
            foreach (var m in _matches.Skip(skip)) WriteObject(m);
        }
    }
}
