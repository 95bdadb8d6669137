namespace HotpatchTools.Engine.Modules
{
    /// <summary>A module file that cannot be read as the format it claims to be (truncated, corrupt, or not that format).</summary>
    internal sealed class ModuleFormatException : HotpatchException
    {
        public ModuleFormatException(ModuleFormat format, string source, string reason)
            : base(HotpatchErrorKind.Internal, source + ": not a valid " + (format == ModuleFormat.Pe ? "PE" : "ELF") + " file: " + reason)
        {
            Format = format;
            Source = source;
            Reason = reason;
        }

        public ModuleFormat Format { get; }

        /// <summary>The file path, or the name given to the parser.</summary>
        public new string Source { get; }

        public string Reason { get; }
    }
}
