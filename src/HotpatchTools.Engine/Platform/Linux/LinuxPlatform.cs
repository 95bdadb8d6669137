using System.Globalization;
using System.Text;

namespace HotpatchTools.Engine.Platform.Linux
{
    internal sealed class LinuxPlatform : IProcessPlatform, IModuleProcessFilter, IProcessEventPlatform, IMappedFileReader
    {
        public Format.TargetOs Os => Format.TargetOs.Linux;

        public IProcessEvents? OpenEvents(Action<string>? log) => LinuxProcessEvents.TryOpen(log);

        public IReadOnlyList<ProcessInfo> ListProcesses()
        {
            var list = new List<ProcessInfo>();
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
                string? name = ProcFs.TryReadComm(pid);
                if (name != null) list.Add(new ProcessInfo(pid, name));
            }
            list.Sort((a, b) => a.Id.CompareTo(b.Id));
            return list;
        }

        /// <summary>One read of each /proc/PID/maps and a byte search for "/NAME" ending a path; names only for matches.</summary>
        public IReadOnlyList<ProcessInfo> ListProcessesWithModule(string moduleName, bool ignoreCase, bool includeUnreadable = true)
        {
            var list = new List<ProcessInfo>();
            // A superset is enough (the engine checks each process): a SONAME (libz.so.1) is not the mapped file's
            // name (libz.so.1.2.13), but both begin like it.
            var needle = Encoding.UTF8.GetBytes("/" + (ignoreCase ? moduleName : Patching.PatchPlanner.SonameStem(moduleName)));
            var buffer = new byte[64 * 1024];
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
                if (!MapsMention(dir + "/maps", needle, ignoreCase, !ignoreCase, includeUnreadable, ref buffer)) continue;
                string? name = ProcFs.TryReadComm(pid);
                if (name != null) list.Add(new ProcessInfo(pid, name));
            }
            list.Sort((a, b) => a.Id.CompareTo(b.Id));
            return list;
        }

        private static readonly byte[] Deleted = Encoding.ASCII.GetBytes(" (deleted)\n");

        /// <param name="prefix">The needle may begin the file name rather than be all of it.</param>
        private static bool MapsMention(string path, byte[] needle, bool ignoreCase, bool prefix, bool unreadable, ref byte[] buffer)
        {
            int length = 0;
            try
            {
                using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None);
                int n;
                while ((n = f.Read(buffer, length, buffer.Length - length)) > 0)
                {
                    length += n;
                    // Past the limit the engine refuses the process when it opens it: a candidate, not read further here.
                    if (length > ProcFs.MaxMapsBytes) return true;
                    if (length == buffer.Length) Array.Resize(ref buffer, Math.Min(buffer.Length * 2, ProcFs.MaxMapsBytes + 1));
                }
            }
            // Not ours to read: it may have the module, so it is a candidate, and Inspect reports it (a sweep counts it).
            catch (UnauthorizedAccessException) { return unreadable; }
            catch (IOException) { return false; }
            for (int i = 0; i + needle.Length < length; i++)
            {
                int k = 0;
                while (k < needle.Length && Same(buffer[i + k], needle[k], ignoreCase)) k++;
                if (k < needle.Length) continue;
                int end = i + k;
                if (prefix)
                {
                    while (end < length && buffer[end] != (byte)'\n' && buffer[end] != (byte)'/') end++;
                    if (end == length || buffer[end] == (byte)'\n') return true;
                    continue;
                }
                if (buffer[end] == (byte)'\n') return true;
                if (end + Deleted.Length <= length && buffer.AsSpan(end, Deleted.Length).SequenceEqual(Deleted)) return true;
            }
            return false;
        }

        private static bool Same(byte a, byte b, bool ignoreCase) =>
            a == b || (ignoreCase && a < 128 && b < 128 && char.ToLowerInvariant((char)a) == char.ToLowerInvariant((char)b));

        /// <summary>Start time and virtual size from /proc/PID/stat: a few hundred bytes where the maps of a large process are hundreds of kilobytes.</summary>
        public string? ChangeStamp(int pid) => ProcFs.StatFields(pid, 19, 20);

        public string StartTime(int pid) => ProcFs.StatFields(pid, 19) ?? "";

        /// <summary>One read of /proc/PID/maps, and for most processes a substring search of it.</summary>
        public IReadOnlyList<MappedFile>? ReadMappedFiles(int pid, IReadOnlyCollection<string> anyOfNames)
        {
            string text;
            try { text = LibC.ReadProcFile("/proc/" + pid + "/maps", ProcFs.MaxMapsBytes); }
            catch (ProcFileTooLargeException) { throw ProcFs.MapsTooLarge(pid); }
            catch (Exception e) when (e is FileNotFoundException || e is DirectoryNotFoundException) { return null; }
            catch (UnauthorizedAccessException e) { throw ProcFs.Denied(pid, e); }
            catch (IOException) when (!Directory.Exists("/proc/" + pid)) { return null; }

            var files = new List<MappedFile>();
            // A mapped file's path is the last field; "/name\n" (or "/name (deleted)\n", a library replaced on disk
            // while the process still runs the old one) only occurs where the module is mapped.
            if (!anyOfNames.Any(name => text.IndexOf("/" + name + "\n", StringComparison.Ordinal) >= 0
                                       || text.IndexOf("/" + name + " (deleted)\n", StringComparison.Ordinal) >= 0))
                return files;
            foreach (var line in text.Split('\n'))
            {
                // No field before the path contains a slash.
                int slash = line.IndexOf(" /", StringComparison.Ordinal);
                if (slash < 0) continue;
                var path = line.Substring(slash + 1);
                if (path.EndsWith(" (deleted)", StringComparison.Ordinal)) path = path.Substring(0, path.Length - 10);
                files.Add(new MappedFile(line.Substring(0, line.IndexOf(' ')), path));
            }
            return files;
        }

        public ITargetProcess Open(int processId)
        {
            if (processId <= 0 || !Directory.Exists("/proc/" + processId))
                throw new HotpatchException(HotpatchErrorKind.ProcessNotFound, "No process with id " + processId + " is running.") { ProcessId = processId };
            LiveTargetProcess.RefuseSelf(processId, "a process cannot patch itself through ptrace.");
            return new LinuxTargetProcess(processId, ProcFs.TryReadComm(processId) ?? "?");
        }
    }

    internal static class ProcFs
    {
        public static string? TryReadComm(int pid)
        {
            try { return LibC.ReadProcFile("/proc/" + pid + "/comm").TrimEnd('\n'); }
            catch (IOException) { return null; }
            catch (UnauthorizedAccessException) { return null; }
        }

        public sealed class MapsLine
        {
            public ulong Start, End, Offset, Inode;
            public bool R, W, X, Private;
            public string Dev = "", Path = "";
        }

        public static List<MapsLine> ReadMaps(int pid)
        {
            string text;
            try { text = LibC.ReadProcFile("/proc/" + pid + "/maps", MaxMapsBytes); }
            catch (ProcFileTooLargeException) { throw MapsTooLarge(pid); }
            catch (FileNotFoundException) { throw Gone(pid); }
            catch (DirectoryNotFoundException) { throw Gone(pid); }
            catch (UnauthorizedAccessException e) { throw Denied(pid, e); }
            catch (IOException e) when (!Directory.Exists("/proc/" + pid)) { throw Gone(pid, e); }
            var result = new List<MapsLine>();
            foreach (var raw in text.Split('\n'))
            {
                if (raw.Length == 0) continue;
                // start-end perms offset dev inode [path]; the path may contain spaces.
                int p = 0;
                string range = Next(raw, ref p), perms = Next(raw, ref p), off = Next(raw, ref p), dev = Next(raw, ref p), inode = Next(raw, ref p);
                while (p < raw.Length && raw[p] == ' ') p++;
                int dash = range.IndexOf('-');
                if (dash < 0 || perms.Length < 4) continue;
                result.Add(new MapsLine
                {
                    Start = ulong.Parse(range.Substring(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                    End = ulong.Parse(range.Substring(dash + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                    R = perms[0] == 'r', W = perms[1] == 'w', X = perms[2] == 'x', Private = perms[3] == 'p',
                    Offset = ulong.Parse(off, NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                    Dev = dev,
                    Inode = ulong.Parse(inode, CultureInfo.InvariantCulture),
                    Path = p < raw.Length ? raw.Substring(p) : "",
                });
            }
            return result;
        }

        private static string Next(string s, ref int p)
        {
            while (p < s.Length && s[p] == ' ') p++;
            int start = p;
            while (p < s.Length && s[p] != ' ') p++;
            return s.Substring(start, p - start);
        }

        public static List<int> ListTasks(int pid)
        {
            var tids = new List<int>();
            try
            {
                foreach (var d in Directory.EnumerateDirectories("/proc/" + pid + "/task"))
                    if (int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out int tid)) tids.Add(tid);
            }
            catch (DirectoryNotFoundException) { }
            catch (IOException) { }
            return tids;
        }

        /// <summary>The one-letter state from /proc/PID/task/TID/stat, or '\0' when the thread is gone.</summary>
        /// <summary>SIGKILL sent to the process but not yet acted on (its threads may still be in a tracing stop).</summary>
        public static bool KillPending(int pid)
        {
            try
            {
                foreach (var line in LibC.ReadProcFile("/proc/" + pid + "/status").Split('\n'))
                    if (line.StartsWith("ShdPnd:", StringComparison.Ordinal))
                        return ulong.TryParse(line.Substring(7).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong set) && (set & (1UL << 8)) != 0;
            }
            catch (IOException) { return true; }
            return false;
        }

        /// <summary>
        /// Fields of /proc/PID/stat, counted from the state (field 3) after the parenthesised command name, which
        /// may hold spaces: 19 is the start time (field 22), 20 the virtual size (field 23). Null when the process is gone.
        /// </summary>
        public static string? StatFields(int pid, params int[] indexes)
        {
            string stat;
            try { stat = LibC.ReadProcFile("/proc/" + pid + "/stat"); }
            catch (IOException) { return null; }
            var fields = stat.Substring(stat.LastIndexOf(')') + 2).Split(' ');
            return string.Join(" ", indexes.Select(i => i < fields.Length ? fields[i] : ""));
        }

        public static char TaskState(int pid, int tid)
        {
            try
            {
                var s = LibC.ReadProcFile("/proc/" + pid + "/task/" + tid + "/stat");
                int close = s.LastIndexOf(')');
                return close >= 0 && close + 2 < s.Length ? s[close + 2] : '\0';
            }
            catch (IOException) { return '\0'; }
        }

        /// <summary>
        /// How many times one thread has been put on a CPU: the third field of /proc/PID/task/TID/schedstat (a small
        /// file), else its voluntary plus involuntary context switches from status. -1 when the thread is gone. A zombie
        /// leader (its threads live on) keeps its counters: the caller checks its state.
        /// </summary>
        public static long TimesRun(int pid, int tid)
        {
            string dir = "/proc/" + pid + "/task/" + tid + "/";
            try
            {
                var f = LibC.ReadProcFile(dir + "schedstat").Split(' ');
                if (f.Length >= 3 && long.TryParse(f[2].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long runs)) return runs;
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            long total = 0;
            int found = 0;
            try
            {
                foreach (var line in LibC.ReadProcFile(dir + "status").Split('\n'))
                {
                    if (line.StartsWith("State:", StringComparison.Ordinal) && line.Substring(6).TrimStart() is string st && st.Length > 0 && (st[0] == 'Z' || st[0] == 'X'))
                        return -1;
                    int colon = line.IndexOf(':');
                    if (colon > 0 && (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal) || line.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal))
                        && long.TryParse(line.Substring(colon + 1).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long n))
                    {
                        total += n;
                        found++;
                    }
                }
            }
            catch (IOException) { return -1; }
            catch (UnauthorizedAccessException) { return -1; }
            return found > 0 ? total : long.MaxValue / 2; // no counters: any live thread will do
        }

        /// <summary>TracerPid of one thread from /proc/PID/task/TID/status; 0 when not traced.</summary>
        public static int TracerPid(int pid, int tid)
        {
            try
            {
                foreach (var line in LibC.ReadProcFile("/proc/" + pid + "/task/" + tid + "/status").Split('\n'))
                    if (line.StartsWith("TracerPid:", StringComparison.Ordinal))
                        return int.Parse(line.Substring(10).Trim(), CultureInfo.InvariantCulture);
            }
            catch (IOException) { }
            return 0;
        }

        /// <summary>
        /// The most of a memory map read: 32 MiB is over 300,000 mappings with typical paths, more than the default
        /// vm.max_map_count (65,530) allows a process; a process past it is refused, not read in part, since a cave or a
        /// module missed in a partial map would make a wrong decision.
        /// </summary>
        public const int MaxMapsBytes = 32 << 20;

        public static HotpatchException MapsTooLarge(int pid) =>
            new HotpatchException(HotpatchErrorKind.SuspiciousProcess,
                "Process " + pid + " (" + (TryReadComm(pid) ?? "?") + "): its memory map (/proc/" + pid + "/maps) is larger than " + (MaxMapsBytes >> 20) +
                " MiB, more than a process normally maps; it was not read (a local user can grow it to make a sweep run as root use up memory), and nothing was written to it.") { ProcessId = pid };

        public static HotpatchException Gone(int pid, Exception? inner = null) =>
            new HotpatchException(HotpatchErrorKind.ProcessExited, "Process " + pid + " has exited.", inner) { ProcessId = pid };

        public static HotpatchException Denied(int pid, Exception? inner = null) =>
            new HotpatchException(HotpatchErrorKind.AccessDenied, "Access to process " + pid + " was denied" + (Machine.Privilege.IsElevated()
                    // Telling root to run as root sends them in a circle: what stops root is the kernel's policy.
                    ? " even to root: kernel.yama.ptrace_scope may be 3, a security module (AppArmor, SELinux) may deny ptrace, or this container lacks CAP_SYS_PTRACE (a container's init is often protected this way)."
                    : ": run as root or with CAP_SYS_PTRACE (and check kernel.yama.ptrace_scope)."), inner) { ProcessId = pid };
    }
}
