namespace HotpatchTools.Engine.Format
{
    internal sealed class MicropatchFormatException : HotpatchException
    {
        public MicropatchFormatException(string source, string key, int line, int column, string message)
            : base(HotpatchErrorKind.InvalidPatchFile, source + ": line " + line + ", column " + column + ": " + key + ": " + message)
        {
            Source = source; Key = key; Line = line; Column = column;
        }
        public new string Source { get; }
        /// <summary>The key path, e.g. "patchlets[0].expect".</summary>
        public string Key { get; }
        public int Line { get; }
        public int Column { get; }
    }
}
