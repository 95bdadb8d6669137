using System;
using System.Collections.Generic;
using System.IO;
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
                    list.Add(new MemoryRegion
                    {
                        Start = start, End = start + length,
                        Readable = committed && Win32.IsReadable(mbi.Protect),
                        Writable = committed && (mbi.Protect & (Win32.PAGE_READWRITE | Win32.PAGE_EXECUTE_READWRITE)) != 0,
                        Executable = committed && Win32.IsExecutable(mbi.Protect),
                        IsAnonymousPrivate = committed && mbi.Type == Win32.MEM_PRIVATE,
                    });
                }
                address = start + length;
            }
            return list;
        }

        public bool TryAllocateAt(ulong address, int size, IFrozenProcess? frozen)
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

        public void Free(ulong address, int size, IFrozenProcess? frozen)
        {
            if (!Win32.VirtualFreeEx(WriteHandle(), (IntPtr)(long)address, IntPtr.Zero, Win32.MEM_RELEASE))
                throw new HotpatchException(HotpatchErrorKind.Internal,
                    "VirtualFreeEx at 0x" + address.ToString("x") + " in process " + Id + " failed: " + Win32.Message(Marshal.GetLastWin32Error()) + ".") { ProcessId = Id };
        }

        // ---- modules ----

        public IReadOnlyList<LoadedModule> GetModules()
        {
            var handles = new IntPtr[1024];
            if (!Win32.EnumProcessModulesEx(_handle, handles, handles.Length * IntPtr.Size, out int needed, Win32.LIST_MODULES_ALL))
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
                sb.Clear();
                string path = Win32.GetModuleFileNameExW(_handle, handles[i], sb, sb.Capacity) > 0 ? sb.ToString() : "";
                sb.Clear();
                string name = Win32.GetModuleBaseNameW(_handle, handles[i], sb, sb.Capacity) > 0 ? sb.ToString() : Path.GetFileName(path);
                ulong start = (ulong)(long)info.lpBaseOfDll;
                list.Add(new LoadedModule
                {
                    Name = name, Path = path, ReadablePath = path, Base = start, End = start + info.SizeOfImage,
                    Key = path.ToLowerInvariant() + "|" + FileStamp(path) + "|" + info.SizeOfImage,
                });
            }
            return list;
        }

        private static string FileStamp(string path)
        {
            try { return File.GetLastWriteTimeUtc(path).Ticks.ToString(); }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException || e is ArgumentException || e is NotSupportedException) { return "?"; }
        }

        public IModuleImage OpenImage(LoadedModule module) =>
            ModuleCache.GetOrAdd("pe|" + module.Key, () =>
            {
                if (File.Exists(module.ReadablePath)) return PeImage.Load(module.ReadablePath);
                // No readable file (a deleted or inaccessible image): the loaded image in memory has the same headers and tables.
                var image = new byte[module.End - module.Base];
                TryRead(module.Base, image);
                return PeImage.FromLoadedImage(image, module.Name + " in process " + Id);
            });

        protected override string ReadablePath(LoadedModule module) => module.ReadablePath;

        // ---- threads ----

        public IFrozenProcess Freeze(TimeSpan timeout) => WindowsFrozenProcess.Stop(this, timeout);
    }
}
