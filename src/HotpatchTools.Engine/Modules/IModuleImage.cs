namespace HotpatchTools.Engine.Modules
{
    public enum ModuleFormat { Elf, Pe }

    /// <summary>
    /// What the engine needs to know of a module file. Every address here is an RVA: an offset from
    /// the module's load base (for ELF: from the address where the file's offset 0 is mapped, i.e.
    /// vaddr minus the page-aligned vaddr of the PT_LOAD that maps offset 0; for PE: the RVA).
    /// </summary>
    public interface IModuleImage
    {
        ModuleFormat Format { get; }
        /// <summary>64 for x64 images, 32 for x86.</summary>
        int Bitness { get; }
        /// <summary>ELF GNU build-id, lowercase hex; null when absent or PE.</summary>
        string? BuildId { get; }
        /// <summary>PE TimeDateStamp; null for ELF.</summary>
        uint? TimeDateStamp { get; }
        /// <summary>PE SizeOfImage; null for ELF.</summary>
        uint? SizeOfImage { get; }
        /// <summary>Resolve an exported/defined symbol by exact name to its RVA.</summary>
        bool TryResolveSymbol(string name, out ulong rva);
        /// <summary>The function (symbol with size, or .pdata entry) containing rva: [start, end).</summary>
        bool TryGetFunctionBounds(ulong rva, out ulong startRva, out ulong endRva, out string? name);
        /// <summary>Every function range the file describes (symbols with sizes, .eh_frame FDEs, .pdata), for the module-wide branch scan.</summary>
        System.Collections.Generic.IEnumerable<(ulong Start, ulong End)> FunctionRanges();
    }
}
