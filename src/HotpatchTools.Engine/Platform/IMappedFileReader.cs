namespace HotpatchTools.Engine.Platform
{
    /// <summary>One file mapping of a process: its address range as the OS prints it and the file's path.</summary>
    internal readonly struct MappedFile
    {
        public MappedFile(string range, string path) { Range = range; Path = path; }
        public string Range { get; }
        public string Path { get; }
    }

    /// <summary>
    /// A platform that can tell which files a process maps from one cheap read, without opening or stopping it:
    /// an enforcement pass looks at every process in every pass, and opening each one costs several times more.
    /// </summary>
    internal interface IMappedFileReader
    {
        /// <summary>
        /// Changes when the process maps or unmaps memory or its id is reused (start time and size); null when it is
        /// gone. A change that leaves both as they were is found by the next full pass.
        /// </summary>
        string? ChangeStamp(int pid);

        /// <summary>When the process started, as text to compare; "" when unknown.</summary>
        string StartTime(int pid);

        /// <summary>
        /// The file mappings of a process (a replaced file under its original path); empty when no file of one of
        /// these names is mapped, null when the process is gone. Throws AccessDenied when it is not ours to read.
        /// </summary>
        IReadOnlyList<MappedFile>? ReadMappedFiles(int pid, IReadOnlyCollection<string> anyOfNames);
    }
}
