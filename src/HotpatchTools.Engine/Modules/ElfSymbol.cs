namespace HotpatchTools.Engine.Modules
{
    /// <summary>A defined symbol of an ELF module, at its RVA (see <see cref="IModuleImage"/>).</summary>
    internal readonly struct ElfSymbol
    {
        internal ElfSymbol(string name, ulong rva, ulong size, byte type, bool isGlobal, bool isHiddenVersion)
        {
            Name = name;
            Rva = rva;
            Size = size;
            Type = type;
            IsGlobal = isGlobal;
            IsHiddenVersion = isHiddenVersion;
        }

        public string Name { get; }
        public ulong Rva { get; }
        public ulong Size { get; }

        /// <summary>The ELF symbol type (STT_*), e.g. 2 for STT_FUNC, 10 for STT_GNU_IFUNC.</summary>
        public byte Type { get; }

        /// <summary>STB_GLOBAL, STB_WEAK or STB_GNU_UNIQUE: visible outside the object it came from.</summary>
        public bool IsGlobal { get; }

        /// <summary>A non-default version of a versioned name (name@VERSION rather than name@@VERSION).</summary>
        public bool IsHiddenVersion { get; }

        /// <summary>STT_FUNC. An STT_GNU_IFUNC symbol is not: its address is that of the resolver, not of the function.</summary>
        public bool IsFunction => Type == ElfImage.SttFunc;

        public override string ToString() => Name + " @0x" + Rva.ToString("x") + " size 0x" + Size.ToString("x");
    }
}
