using System;

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
    }
}
