using HotpatchTools.Engine.Modules;

namespace HotpatchTools.Engine.Platform.Offline
{
    /// <summary>
    /// A platform with a single process, the <see cref="ImageProcess"/> of one module file, for the engine to
    /// check, install and remove a patch offline. Its OS is the one the file is built for, whatever this machine runs.
    /// </summary>
    internal sealed class OfflinePlatform : IProcessPlatform
    {
        public OfflinePlatform(string modulePath) : this(new ImageProcess(modulePath)) { }

        public OfflinePlatform(ImageProcess process)
        {
            Process = process;
        }

        public ImageProcess Process { get; }

        public Format.TargetOs Os => Process.Image.Format == ModuleFormat.Pe ? Format.TargetOs.Windows : Format.TargetOs.Linux;

        public IReadOnlyList<ProcessInfo> ListProcesses() => new[] { new ProcessInfo(Process.Id, Process.Name) };

        public ITargetProcess Open(int processId) =>
            processId == Process.Id
                ? Process
                : throw new HotpatchException(HotpatchErrorKind.ProcessNotFound,
                    "No process with id " + processId + " is running; the offline image of " + Process.Name + " is process " + Process.Id + ".") { ProcessId = processId };
    }
}
