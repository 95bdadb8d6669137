using HotpatchTools.Engine.Authoring;
using HotpatchTools.Engine.Inspection;

namespace HotpatchTools
{
    // Flat snapshots like those of OutputTypes.cs: strings, numbers and string[] only, so they mean the same after
    // remoting serialization; addresses are hex strings, as admins read and paste them.

    /// <summary>Get-HotpatchModule: a module loaded in a process, with the identity patch files bind to.</summary>
    public sealed class HotpatchModule
    {
        public string ComputerName { get; set; } = Environment.MachineName;
        public int ProcessId { get; set; }
        public string ProcessName { get; set; } = "";
        public string Name { get; set; } = "";
        public string Path { get; set; } = "";
        public string BaseAddress { get; set; } = "";
        public long Size { get; set; }
        /// <summary>ELF or PE; empty when the file could not be read.</summary>
        public string Format { get; set; } = "";
        public string BuildId { get; set; } = "";
        /// <summary>ELF DT_SONAME, the name ldd shows; target.module may name it. Empty for PE or a file without one.</summary>
        public string Soname { get; set; } = "";
        public string TimeDateStamp { get; set; } = "";
        public string SizeOfImage { get; set; } = "";
        /// <summary>The identity as a patch file's target.identity writes it.</summary>
        public string Identity { get; set; } = "";
        /// <summary>Why the identity is missing (file gone or unreadable); empty otherwise.</summary>
        public string Message { get; set; } = "";

        internal static HotpatchModule From(ModuleDescription m)
        {
            var r = new HotpatchModule
            {
                ProcessId = m.ProcessId, ProcessName = m.ProcessName, Name = m.Name, Path = m.Path, BaseAddress = "0x" + m.Base.ToString("x"),
                Size = (long)m.Size, Format = m.Format switch { Engine.Modules.ModuleFormat.Elf => "ELF", Engine.Modules.ModuleFormat.Pe => "PE", _ => "" }, BuildId = m.BuildId ?? "", Soname = m.Soname ?? "",
                TimeDateStamp = m.TimeDateStamp == null ? "" : "0x" + m.TimeDateStamp.Value.ToString("X8"),
                SizeOfImage = m.SizeOfImage == null ? "" : "0x" + m.SizeOfImage.Value.ToString("X"), Message = m.Problem ?? "",
            };
            r.Identity = r.BuildId.Length > 0 ? "buildId: " + r.BuildId
                : r.TimeDateStamp.Length > 0 ? "timeDateStamp: " + r.TimeDateStamp + ", sizeOfImage: " + r.SizeOfImage : "";
            return r;
        }
    }

    /// <summary>Get-MicropatchSite: one patchlet's site in one process.</summary>
    public sealed class MicropatchSite
    {
        public string ComputerName { get; set; } = Environment.MachineName;
        public int ProcessId { get; set; }
        public string ProcessName { get; set; } = "";
        public string PatchId { get; set; } = "";
        public string Patchlet { get; set; } = "";
        public string Module { get; set; } = "";
        public string Address { get; set; } = "";
        public string Symbol { get; set; } = "";
        /// <summary>Insert or Replace.</summary>
        public string Mode { get; set; } = "";
        public int SpanLength { get; set; }
        /// <summary>Original, Patched or Modified.</summary>
        public string State { get; set; } = "";
        public string Plan { get; set; } = "";
        /// <summary>The ErrorId install would fail with at this site; empty when it would proceed.</summary>
        public string Refusal { get; set; } = "";
        public string CaveAddress { get; set; } = "";
        /// <summary>"0xADDRESS: bytes  instruction" lines: the site now, and the cave's code when the site jumps there.</summary>
        public FlatStringList Disassembly { get; set; } = new FlatStringList();

        internal static MicropatchSite From(SiteDescription s) => new MicropatchSite
        {
            ProcessId = s.ProcessId, ProcessName = s.ProcessName, PatchId = s.PatchId, Patchlet = s.Patchlet, Module = s.Module,
            Address = s.Address == 0 ? "" : "0x" + s.Address.ToString("x"), Symbol = s.Symbol, Mode = s.Mode, SpanLength = s.SpanLength,
            State = s.State.ToString(), Plan = s.Plan, Refusal = s.Refusal?.ToString() ?? "",
            CaveAddress = s.CaveAddress == 0 ? "" : "0x" + s.CaveAddress.ToString("x"), Disassembly = new FlatStringList(s.Disassembly.ToArray()),
        };
    }

    /// <summary>Test-Micropatch: one patch file checked against one module file on disk.</summary>
    public sealed class MicropatchTestResult
    {
        public string ComputerName { get; set; } = Environment.MachineName;
        public string PatchId { get; set; } = "";
        /// <summary>Applies, Mismatch (another build), Unsupported (a safety rule refuses a site) or NotApplicable (another module).</summary>
        public string Result { get; set; } = "";
        public string ModulePath { get; set; } = "";
        /// <summary>Why not, or where every check passed.</summary>
        public string Reason { get; set; } = "";
        /// <summary>The refusal's ErrorId (the same as Install-Micropatch's); empty when it applies.</summary>
        public string ErrorId { get; set; } = "";
        /// <summary>Each site and its cave's code as the engine would build it: patch code, relocated instructions, jump back.</summary>
        public FlatStringList Listing { get; set; } = new FlatStringList();
        public string PatchPath { get; set; } = "";

        internal static MicropatchTestResult From(OfflineCheckResult r, string patchPath) => new MicropatchTestResult
        {
            PatchId = r.PatchId, Result = r.State.ToString(), ModulePath = r.ModulePath, Reason = r.Reason,
            ErrorId = r.ErrorKind?.ToString() ?? "", Listing = new FlatStringList(r.Listing.ToArray()), PatchPath = patchPath,
        };
    }
}
