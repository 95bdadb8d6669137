using HotpatchTools.Engine.Modules;

namespace HotpatchTools.Engine.Platform
{
    /// <summary>
    /// What the Linux and Windows backends do alike: reading exactly or failing with the cause, hashing a module
    /// file within bounds (a hostile process may map a huge file under a module's name), and refusing the process
    /// this engine runs in.
    /// </summary>
    internal abstract class LiveTargetProcess
    {
        public abstract int Id { get; }

        public abstract int TryRead(ulong address, byte[] buffer);

        public void Read(ulong address, byte[] buffer)
        {
            if (TryRead(address, buffer) == buffer.Length) return;
            throw ShortReadCause() ?? new HotpatchException(HotpatchErrorKind.Internal,
                "Could not read " + buffer.Length + " bytes at 0x" + address.ToString("x") + " in process " + Id + ".") { ProcessId = Id };
        }

        /// <summary>A better cause for a short read than "could not read" where the OS tells one (the process is exiting).</summary>
        protected virtual HotpatchException? ShortReadCause() => null;

        public string ComputeSha256(LoadedModule module) =>
            ModuleFile.Sha256(ReadablePath(module), module.Key, "Module file " + module.Path + " of process " + Id);

        /// <summary>A path this process can open to read the module's file.</summary>
        public abstract string ReadablePath(LoadedModule module);

        private static readonly int Self = System.Diagnostics.Process.GetCurrentProcess().Id;

        /// <summary>Throws AccessDenied for the process this engine runs in; `why` says why it cannot patch itself.</summary>
        public static void RefuseSelf(int processId, string why)
        {
            if (processId == Self)
                throw new HotpatchException(HotpatchErrorKind.AccessDenied, "Process " + processId + " is this process itself; " + why) { ProcessId = processId };
        }
    }
}
