namespace HotpatchTools.Engine.Modules
{
    /// <summary>A defined symbol of an ELF module, at its RVA (see <see cref="IModuleImage"/>).</summary>
    /// <param name="Type">The ELF symbol type (STT_*), e.g. 2 for STT_FUNC, 10 for STT_GNU_IFUNC.</param>
    /// <param name="IsGlobal">STB_GLOBAL, STB_WEAK or STB_GNU_UNIQUE: visible outside the object it came from.</param>
    /// <param name="IsHiddenVersion">A non-default version of a versioned name (name@VERSION rather than name@@VERSION).</param>
    internal readonly record struct ElfSymbol(string Name, ulong Rva, ulong Size, byte Type, bool IsGlobal, bool IsHiddenVersion)
    {
        /// <summary>STT_FUNC. An STT_GNU_IFUNC symbol is not: its address is that of the resolver, not of the function.</summary>
        public bool IsFunction => Type == ElfImage.SttFunc;

        public override string ToString() => Name + " @0x" + Rva.ToString("x") + " size 0x" + Size.ToString("x");
    }
}
