namespace HotpatchTools.Engine.Modules
{
    /// <summary>An executable part of a module file: FileSize bytes at FileOffset, mapped at Rva.</summary>
    internal readonly struct CodeSegment
    {
        public CodeSegment(ulong rva, ulong fileOffset, ulong fileSize)
        {
            Rva = rva;
            FileOffset = fileOffset;
            FileSize = fileSize;
        }

        public ulong Rva { get; }
        public ulong FileOffset { get; }
        public ulong FileSize { get; }
    }
}
