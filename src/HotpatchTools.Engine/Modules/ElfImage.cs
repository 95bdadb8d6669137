using System;

namespace HotpatchTools.Engine.Modules
{
    public sealed class ElfImage : IModuleImage
    {
        public static ElfImage Load(string path) => throw new NotImplementedException();
        public static ElfImage Parse(byte[] data, string sourceName) => throw new NotImplementedException();
        public ModuleFormat Format => ModuleFormat.Elf;
        public int Bitness => throw new NotImplementedException();
        public string? BuildId => throw new NotImplementedException();
        public uint? TimeDateStamp => null;
        public uint? SizeOfImage => null;
        public bool TryResolveSymbol(string name, out ulong rva) => throw new NotImplementedException();
        public bool TryGetFunctionBounds(ulong rva, out ulong startRva, out ulong endRva, out string? name) => throw new NotImplementedException();
    }
}
