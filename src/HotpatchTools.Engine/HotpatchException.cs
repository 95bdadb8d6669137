namespace HotpatchTools.Engine
{
    /// <summary>What went wrong, stable enough for a cmdlet to turn into an ErrorId and category.</summary>
    public enum HotpatchErrorKind
    {
        InvalidPatchFile,
        AssemblyError,
        PlatformNotSupported,
        ProcessNotFound,
        ProcessExited,
        AccessDenied,
        Busy,
        ModuleNotLoaded,
        IdentityMismatch,
        ExpectMismatch,
        UnsafeSite,
        ThreadInSpan,
        NoCaveSpace,
        AlreadyInstalled,
        NotInstalled,
        SiteModified,
        WriteFailed,
        Internal,
        /// <summary>The patch file has no signature beside it and unsigned files were not allowed.</summary>
        NotSigned,
        /// <summary>The patch file's bytes differ from the bytes its signature covers.</summary>
        HashMismatch,
        /// <summary>The signature is malformed, does not verify, or its certificate may not sign code now.</summary>
        SignatureInvalid,
        /// <summary>The signature verifies but its signer is not on this machine's list of trusted publishers.</summary>
        UntrustedPublisher,
        /// <summary>The session is not root / an elevated Administrator.</summary>
        NotElevated,
        /// <summary>The machine's audit log cannot be written, so nothing that would need a record is done.</summary>
        AuditFailed,
        /// <summary>The trusted publisher list is unreadable, malformed, or writable by non-administrators.</summary>
        TrustStoreError,
        /// <summary>A process whose memory holds more or stranger cave headers than any install makes: it is not read further.</summary>
        SuspiciousProcess,
    }

    public class HotpatchException : Exception
    {
        public HotpatchException(HotpatchErrorKind kind, string message, Exception? inner = null)
            : base(message, inner)
        {
            Kind = kind;
        }

        public HotpatchErrorKind Kind { get; }

        /// <summary>The process the error is about, when there is one.</summary>
        public int? ProcessId { get; set; }

        /// <summary>The patchlet the error is about, e.g. "patchlets[0] (at parse_record)".</summary>
        public string? Patchlet { get; set; }

        /// <summary>
        /// What to do about it in the caller's own terms (a command to run, a switch to pass), shown after the
        /// engine's message: the engine knows no commands, so the layer that does adds it.
        /// </summary>
        public string? Advice { get; set; }

        public override string Message => Advice == null ? base.Message : base.Message + " " + Advice;

        /// <summary>
        /// What a failed open or read of a file means, or null for an exception that is not about the file: missing,
        /// access denied, or unreadable, each as the caller's kind (a patch file's problems are the file's; a module
        /// file's say which), with <paramref name="doing"/> ("open", "read") in the last.
        /// </summary>
        internal static HotpatchException? ForFile(Exception e, string path, string doing, HotpatchErrorKind missing, HotpatchErrorKind denied, HotpatchErrorKind unreadable)
        {
            if (e is System.IO.FileNotFoundException || e is System.IO.DirectoryNotFoundException)
                return new HotpatchException(missing, path + ": file not found", e);
            if (e is UnauthorizedAccessException || e is System.Security.SecurityException)
                return new HotpatchException(denied, path + ": access denied", e);
            if (e is System.IO.IOException || e is ArgumentException || e is NotSupportedException)
                return new HotpatchException(unreadable, path + ": cannot " + doing + " the file: " + e.Message, e);
            return null;
        }
    }
}
