namespace HotpatchTools.Engine.Modules
{
    /// <summary>An executable part of a module file: FileSize bytes at FileOffset, mapped at Rva.</summary>
    internal readonly record struct CodeSegment(ulong Rva, ulong FileOffset, ulong FileSize);
}
