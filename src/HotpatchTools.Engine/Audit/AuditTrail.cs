namespace HotpatchTools.Engine.Audit
{
    /// <summary>Where every record goes: the machine's audit log file and the system log.</summary>
    public static class AuditTrail
    {
        /// <summary>
        /// Writes the record to the audit file and the system log. The system log gets it even when the file cannot
        /// be written (a non-elevated session's refusal still leaves a trace there); then AuditFailed is thrown.
        /// </summary>
        public static void Record(AuditRecord record, AuditLog? log = null)
        {
            Exception? fileError = null;
            var target = log ?? AuditLog.Machine;
            try { target.Append(record); }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException) { fileError = e; }
            try { SystemLog.Send(record); }
            catch (Exception e) when (e is DllNotFoundException || e is EntryPointNotFoundException || e is IOException) { /* no system log here */ }
            if (fileError != null)
                throw new HotpatchException(HotpatchErrorKind.AuditFailed, "The audit record was not written to " + target.Path + ": " + fileError.Message, fileError);
        }
    }
}
