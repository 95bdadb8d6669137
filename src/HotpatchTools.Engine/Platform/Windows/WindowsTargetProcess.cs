using System.Runtime.InteropServices;
using System.Text;
using HotpatchTools.Engine.Modules;

namespace HotpatchTools.Engine.Platform.Windows
{
    internal sealed class WindowsTargetProcess : LiveTargetProcess, ITargetProcess, IProcessMemory, IModuleEnumerator, IThreadController
    {
        private const int PageSize = 4096;
        private IntPtr _handle;
        private bool _canWrite;

        public WindowsTargetProcess(int pid, IntPtr readHandle, string name)
        {
            Id = pid;
            _handle = readHandle;
            Name = name;
            Bitness = Environment.Is64BitOperatingSystem && Win32.IsWow64Process(readHandle, out bool wow) && wow ? 32 : (Environment.Is64BitOperatingSystem ? 64 : 32);
        }

        public override int Id { get; }
        /// <summary>The open process handle (query and read rights at least).</summary>
        internal IntPtr Handle => _handle;
        public string Name { get; }
        public int Bitness { get; }

        public bool HasExited => Win32.GetExitCodeProcess(_handle, out uint code) && code != Win32.STILL_ACTIVE;
        public IProcessMemory Memory => this;
        public IModuleEnumerator Modules => this;
        public IThreadController Threads => this;
        public int AllocationGranularity => 0x10000;

        public void Dispose()
        {
            if (_handle != IntPtr.Zero) { Win32.CloseHandle(_handle); _handle = IntPtr.Zero; }
        }

        /// <summary>Reopens with write rights the first time something is written.</summary>
        private IntPtr WriteHandle()
        {
            if (_canWrite) return _handle;
            IntPtr h = Win32.OpenProcess(Win32.PROCESS_QUERY_INFORMATION | Win32.PROCESS_VM_READ | Win32.PROCESS_VM_WRITE | Win32.PROCESS_VM_OPERATION, false, Id);
            if (h == IntPtr.Zero) throw WindowsPlatform.Denied(Id, Marshal.GetLastWin32Error());
            Win32.CloseHandle(_handle);
            _handle = h;
            _canWrite = true;
            return h;
        }

        // ---- memory ----

        public override int TryRead(ulong address, byte[] buffer)
        {
            if (buffer.Length == 0) return 0;
            if (Win32.ReadProcessMemory(_handle, (IntPtr)(long)address, buffer, (IntPtr)buffer.Length, out var read)) return (int)read;
            // A read across an unreadable page fails whole: retry page by page for what is readable.
            int total = 0;
            while (total < buffer.Length)
            {
                int chunk = (int)Math.Min((ulong)(buffer.Length - total), PageSize - ((address + (ulong)total) % PageSize));
                var part = new byte[chunk];
                if (!Win32.ReadProcessMemory(_handle, (IntPtr)(long)(address + (ulong)total), part, (IntPtr)chunk, out var got) || (int)got != chunk) break;
                Buffer.BlockCopy(part, 0, buffer, total, chunk);
                total += chunk;
            }
            return total;
        }

        /// <summary>Makes each page writable only for the write and puts its exact protection back.</summary>
        public void Write(ulong address, byte[] data)
        {
            IntPtr h = WriteHandle();
            int done = 0;
            while (done < data.Length)
            {
                ulong at = address + (ulong)done;
                int chunk = (int)Math.Min((ulong)(data.Length - done), PageSize - (at % PageSize));
                var part = new byte[chunk];
                Buffer.BlockCopy(data, done, part, 0, chunk);
                if (!Win32.VirtualProtectEx(h, (IntPtr)(long)at, (IntPtr)chunk, Win32.PAGE_EXECUTE_READWRITE, out uint old))
                    throw WriteError(at, chunk, "VirtualProtectEx");
                bool ok = Win32.WriteProcessMemory(h, (IntPtr)(long)at, part, (IntPtr)chunk, out var written) && (int)written == chunk;
                int err = Marshal.GetLastWin32Error();
                Win32.VirtualProtectEx(h, (IntPtr)(long)at, (IntPtr)chunk, old, out _);
                if (!ok) throw WriteError(at, chunk, "WriteProcessMemory", err);
                done += chunk;
            }
            Win32.FlushInstructionCache(h, (IntPtr)(long)address, (IntPtr)data.Length);
        }

        private HotpatchException WriteError(ulong at, int count, string call, int err = -1) =>
            new HotpatchException(HotpatchErrorKind.WriteFailed,
                call + " of " + count + " bytes at 0x" + at.ToString("x") + " in process " + Id + " failed: " + Win32.Message(err < 0 ? Marshal.GetLastWin32Error() : err) + ".") { ProcessId = Id };

        public IReadOnlyList<MemoryRegion> GetRegions()
        {
            var list = new List<MemoryRegion>();
            ulong limit = Bitness == 64 ? 0x7FFF_FFFF_0000UL : 0xFFFF_0000UL;
            ulong address = 0;
            int size = Marshal.SizeOf<Win32.MEMORY_BASIC_INFORMATION>();
            while (address < limit)
            {
                if (Win32.VirtualQueryEx(_handle, (IntPtr)(long)address, out var mbi, (IntPtr)size) == IntPtr.Zero) break;
                ulong start = (ulong)(long)mbi.BaseAddress, length = (ulong)(long)mbi.RegionSize;
                if (length == 0) break;
                if (mbi.State != Win32.MEM_FREE)
                {
                    bool committed = mbi.State == Win32.MEM_COMMIT;
                    list.Add(new MemoryRegion(
                        start, start + length,
                        Readable: committed && Win32.IsReadable(mbi.Protect),
                        Writable: committed && (mbi.Protect & (Win32.PAGE_READWRITE | Win32.PAGE_EXECUTE_READWRITE)) != 0,
                        Executable: committed && Win32.IsExecutable(mbi.Protect),
                        IsAnonymousPrivate: committed && mbi.Type == Win32.MEM_PRIVATE));
                }
                address = start + length;
            }
            return list;
        }

        public bool TryAllocateAt(ulong address, int size)
        {
            IntPtr r = Win32.VirtualAllocEx(WriteHandle(), (IntPtr)(long)address, (IntPtr)size, Win32.MEM_COMMIT | Win32.MEM_RESERVE, Win32.PAGE_EXECUTE_READ);
            if (r != IntPtr.Zero)
            {
                if ((ulong)(long)r == address) return true;
                Win32.VirtualFreeEx(_handle, r, IntPtr.Zero, Win32.MEM_RELEASE);
                return false;
            }
            int err = Marshal.GetLastWin32Error();
            if (err == Win32.ERROR_INVALID_ADDRESS) return false;
            throw new HotpatchException(HotpatchErrorKind.NoCaveSpace,
                "VirtualAllocEx of " + size + " bytes at 0x" + address.ToString("x") + " in process " + Id + " failed: " + Win32.Message(err) + ".") { ProcessId = Id };
        }

        public void Free(ulong address, int size)
        {
            if (!Win32.VirtualFreeEx(WriteHandle(), (IntPtr)(long)address, IntPtr.Zero, Win32.MEM_RELEASE))
                throw new HotpatchException(HotpatchErrorKind.Internal,
                    "VirtualFreeEx at 0x" + address.ToString("x") + " in process " + Id + " failed: " + Win32.Message(Marshal.GetLastWin32Error()) + ".") { ProcessId = Id };
        }

        // ---- modules ----

        /// <summary>A 32-bit process read by a 64-bit engine.</summary>
        private bool IsWow64Target => Bitness == 32 && IntPtr.Size == 8;

        public IReadOnlyList<LoadedModule> GetModules()
        {
            var handles = new IntPtr[1024];
            // A WoW64 process also maps 64-bit modules (its ntdll and the wow64 layer); only its 32-bit ones run its
            // code, and a patch for x86 "ntdll.dll" must not find the 64-bit one. Wine ignores this filter: each
            // module's own header decides as well (Is32BitModule).
            int filter = IsWow64Target ? Win32.LIST_MODULES_32BIT : Win32.LIST_MODULES_ALL;
            if (!Win32.EnumProcessModulesEx(_handle, handles, handles.Length * IntPtr.Size, out int needed, filter))
            {
                int err = Marshal.GetLastWin32Error();
                if (err == Win32.ERROR_ACCESS_DENIED) throw WindowsPlatform.Denied(Id, err);
                throw new HotpatchException(HotpatchErrorKind.ProcessExited, "Modules of process " + Id + " could not be listed: " + Win32.Message(err) + ".") { ProcessId = Id };
            }
            int count = Math.Min(needed / IntPtr.Size, handles.Length);
            var list = new List<LoadedModule>(count);
            var sb = new StringBuilder(1024);
            for (int i = 0; i < count; i++)
            {
                if (!Win32.GetModuleInformation(_handle, handles[i], out var info, Marshal.SizeOf<Win32.MODULEINFO>())) continue;
                ulong start = (ulong)(long)info.lpBaseOfDll;
                if (IsWow64Target && !Is32BitModule(start, info.SizeOfImage)) continue;
                sb.Clear();
                string path = Win32.GetModuleFileNameExW(_handle, handles[i], sb, sb.Capacity) > 0 ? sb.ToString() : "";
                sb.Clear();
                string name = Win32.GetModuleBaseNameW(_handle, handles[i], sb, sb.Capacity) > 0 ? sb.ToString() : Path.GetFileName(path);
                string readable = IsWow64Target ? Wow64FilePath(path) : path;
                list.Add(new LoadedModule
                {
                    Name = name, Path = path, ReadablePath = readable, Base = start, End = start + info.SizeOfImage,
                    Key = readable.ToLowerInvariant() + "|" + FileStamp(readable) + "|" + info.SizeOfImage,
                });
            }
            return list;
        }

        /// <summary>
        /// Whether the module mapped at start is an i386 image below 4 GB, from its own headers in the target: the
        /// module list of a WoW64 process may hold its 64-bit modules whatever filter was asked for (Wine).
        /// </summary>
        private bool Is32BitModule(ulong start, uint size)
        {
            if (start + size > 0x1_0000_0000UL || size < 0x40) return false;
            var dos = new byte[0x40];
            if (TryRead(start, dos) != dos.Length || dos[0] != (byte)'M' || dos[1] != (byte)'Z') return false;
            uint lfanew = BitConverter.ToUInt32(dos, 0x3C);
            if (lfanew > size - 6) return false;
            var nt = new byte[6];
            if (TryRead(start + lfanew, nt) != nt.Length || nt[0] != (byte)'P' || nt[1] != (byte)'E' || nt[2] != 0 || nt[3] != 0) return false;
            return BitConverter.ToUInt16(nt, 4) == PeImage.MachineI386;
        }

        /// <summary>
        /// The file a 32-bit module reported under System32 really is: a 64-bit reader asking about a WoW64 process
        /// may be told System32 where the process, redirected, mapped SysWOW64 (a 32-bit process cannot map System32's
        /// 64-bit DLLs). Parsing System32's file would read another build's code and tables.
        /// </summary>
        private static string Wow64FilePath(string path)
        {
            string system = Environment.SystemDirectory, wow = Environment.GetFolderPath(Environment.SpecialFolder.SystemX86);
            if (path.Length <= system.Length || wow.Length == 0 || string.Equals(system, wow, StringComparison.OrdinalIgnoreCase)
                || !path.StartsWith(system.TrimEnd('\\') + "\\", StringComparison.OrdinalIgnoreCase))
                return path;
            string redirected = Path.Combine(wow, path.Substring(system.TrimEnd('\\').Length + 1));
            return File.Exists(redirected) ? redirected : path;
        }

        private static string FileStamp(string path)
        {
            try { return File.GetLastWriteTimeUtc(path).Ticks.ToString(); }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException || e is ArgumentException || e is NotSupportedException) { return "?"; }
        }

        public IModuleImage OpenImage(LoadedModule module) =>
            ModuleCache.GetOrAdd("pe|" + module.Key, () =>
            {
                if (File.Exists(module.ReadablePath))
                {
                    // A file of the other bitness is not what is mapped (a path the redirector would have changed).
                    var file = PeImage.Load(module.ReadablePath);
                    if (file.Bitness == Bitness) return file;
                }
                // No readable file (a deleted or inaccessible image): the loaded image in memory has the same headers and tables.
                var image = new byte[LoadedImageSize(module, Id)];
                TryRead(module.Base, image);
                return PeImage.FromLoadedImage(image, module.Name + " in process " + Id);
            });

        /// <summary>Larger than any DLL's SizeOfImage (the largest real ones are a few hundred MB).</summary>
        internal const ulong MaxLoadedImage = 1UL << 30;

        /// <summary>
        /// How many bytes of a module to read from memory. Its size is the loader's entry in the process (GetModuleInformation
        /// reads it from the PEB), which the process's owner can set to anything up to 4 GiB, and name a file that does not
        /// exist so that the image is read from memory: a reader running as Administrator must not allocate that.
        /// </summary>
        internal static int LoadedImageSize(LoadedModule module, int pid)
        {
            ulong size = module.End - module.Base;
            if (module.End <= module.Base || size > MaxLoadedImage)
                throw new ModuleFormatException(ModuleFormat.Pe, module.Name + " in process " + pid,
                    "the loader lists it with SizeOfImage 0x" + size.ToString("x") + ", not between 1 byte and " + (MaxLoadedImage >> 20) + " MiB; its image is not read from memory");
            return (int)size;
        }

        public override string ReadablePath(LoadedModule module) => module.ReadablePath;

        // ---- threads ----

        public IFrozenProcess Freeze(TimeSpan timeout) => WindowsFrozenProcess.Stop(this, timeout);

        /// <summary>VirtualAllocEx and VirtualFreeEx stop nothing: the threads are held no longer than the writes need.</summary>
        public bool AllocateWithinFreeze => false;
    }
}
