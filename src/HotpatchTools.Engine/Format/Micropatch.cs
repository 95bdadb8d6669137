namespace HotpatchTools.Engine.Format
{
    public enum TargetOs { Windows, Linux }

    /// <summary>The names a patch file gives the target (the spec's words): read and written by these alone.</summary>
    internal static class TargetOsNames
    {
        /// <summary>The name a patch file's target.os gives it ("windows", "linux").</summary>
        public static string FileName(this TargetOs os) => os == TargetOs.Windows ? "windows" : "linux";

        /// <summary>The name a patch file's target.arch gives it ("x64", "x86").</summary>
        public static string FileName(this TargetArch arch) => arch == TargetArch.X64 ? "x64" : "x86";
    }
    public enum TargetArch { X64, X86 }
    public enum PatchMode { Insert, Replace }
    public enum Severity { Low, Medium, High, Critical }

    /// <summary>A parsed, validated micropatch file (format 1). Immutable once parsed.</summary>
    public sealed class Micropatch
    {
        public int Format { get; internal set; }
        public string Id { get; internal set; } = "";
        public string Title { get; internal set; } = "";
        public string? Description { get; internal set; }
        public IReadOnlyList<string> References { get; internal set; } = new string[0];
        public Severity? Severity { get; internal set; }
        /// <summary>Ids of the patches this one replaces: installing it removes them under the same freeze.</summary>
        public IReadOnlyList<string> Supersedes { get; internal set; } = new string[0];
        public MicropatchTarget Target { get; internal set; } = new MicropatchTarget();
        public IReadOnlyList<Patchlet> Patchlets { get; internal set; } = new Patchlet[0];

        /// <summary>SHA-256 of the exact file bytes, lowercase hex.</summary>
        public string FileSha256 { get; internal set; } = "";

        /// <summary>SHA-256 of the exact file bytes.</summary>
        public byte[] FileSha256Bytes { get; internal set; } = new byte[32];

        /// <summary>Full path of the file, or the name given to Parse.</summary>
        public string SourceName { get; internal set; } = "";

        /// <summary>
        /// The signature checked when the file was loaded through <see cref="Trust.TrustPolicy"/>, so the audit
        /// record of an install can name the signer; null when it was parsed without a trust check.
        /// </summary>
        public Trust.PatchSignature? Signature { get; internal set; }
    }

    public sealed class MicropatchTarget
    {
        public TargetOs Os { get; internal set; }
        public TargetArch Arch { get; internal set; }
        public string Module { get; internal set; } = "";
        public ModuleIdentity Identity { get; internal set; } = new ModuleIdentity();
    }

    public sealed class ModuleIdentity
    {
        /// <summary>Lowercase hex, no separators.</summary>
        public string? BuildId { get; internal set; }
        public uint? TimeDateStamp { get; internal set; }
        public uint? SizeOfImage { get; internal set; }
        /// <summary>Lowercase hex, no separators.</summary>
        public string? Sha256 { get; internal set; }
        public bool IsEmpty => BuildId == null && TimeDateStamp == null && SizeOfImage == null && Sha256 == null;
    }

    /// <summary>Where a patchlet applies: a symbol of the target module plus an offset, or a module-relative offset.</summary>
    public sealed class SiteLocation
    {
        /// <summary>Null when the location is a plain module-relative offset (RVA).</summary>
        public string? Symbol { get; internal set; }
        public ulong Offset { get; internal set; }
        public override string ToString() => Symbol == null ? "0x" + Offset.ToString("x") : (Offset == 0 ? Symbol : Symbol + "+0x" + Offset.ToString("x"));
    }

    /// <summary>A patchlet's `function`: a symbol (with a size) or a [Start, End) range.</summary>
    public sealed class DeclaredFunction
    {
        public string? Symbol { get; internal set; }
        public SiteLocation? Start { get; internal set; }
        public SiteLocation? End { get; internal set; }
        public override string ToString() => Symbol ?? "{ start: " + Start + ", end: " + End + " }";
    }

    public sealed class Patchlet
    {
        public int Index { get; internal set; }
        /// <summary>The `at` text as written in the file.</summary>
        public string At { get; internal set; } = "";
        public SiteLocation Location { get; internal set; } = new SiteLocation();
        public byte[] Expect { get; internal set; } = new byte[0];
        /// <summary>The patchlet's `function`: bounds the author declares where the module has none; null when absent.</summary>
        public DeclaredFunction? Function { get; internal set; }
        public PatchMode Mode { get; internal set; }
        /// <summary>Assembly text; empty when the file has no code.</summary>
        public string Code { get; internal set; } = "";
        /// <summary>1-based line of the patchlet's first key in the file.</summary>
        public int Line { get; internal set; }
        /// <summary>1-based file line of the first line of <see cref="Code"/>.</summary>
        public int CodeLine { get; internal set; }
        /// <summary>1-based file column where each code line's text starts (the block's indentation + 1).</summary>
        public int CodeColumn { get; internal set; }

        /// <summary>How errors name this patchlet.</summary>
        public string Name => "patchlets[" + Index + "] (at " + At + ")";
    }
}
