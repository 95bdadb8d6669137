using System.Diagnostics;
using System.Runtime.InteropServices;
using static HotpatchTools.Engine.Platform.Windows.Win32;

namespace HotpatchTools.Tests.Support
{
    /// <summary>A mingw-built target under Wine, read through the Win32 API directly.</summary>
    public sealed class WindowsTarget : TargetProcess
    {
        private readonly Process _process;
        private readonly IntPtr _handle;

        public WindowsTarget(string exe) : base(exe)
        {
            var psi = new ProcessStartInfo(exe) { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
            _process = Process.Start(psi)!;
            Attach(_process.StandardInput, _process.StandardOutput);
            var line = ReadLine() ?? throw new InvalidOperationException("target did not start");
            if (!line.StartsWith("ready ")) throw new InvalidOperationException("target said '" + line + "'");
            Pid = _process.Id;
            _handle = OpenProcess(PROCESS_QUERY_INFORMATION | PROCESS_VM_READ, false, Pid);
        }

        public override bool IsAlive => !_process.HasExited;

        /// <summary>The first module psapi lists is the executable. (Process.MainModule hung under Wine inside xunit v3.)</summary>
        public override ulong ModuleBase()
        {
            var modules = new IntPtr[1];
            if (!EnumProcessModulesEx(_handle, modules, IntPtr.Size, out _, LIST_MODULES_ALL))
                throw new InvalidOperationException("EnumProcessModulesEx failed: " + Marshal.GetLastWin32Error());
            return (ulong)(long)modules[0];
        }

        public override byte[] Read(ulong address, int count)
        {
            var buf = new byte[count];
            if (!ReadProcessMemory(_handle, (IntPtr)(long)address, buf, (IntPtr)count, out var read) || (int)read != count)
                throw new InvalidOperationException("ReadProcessMemory at 0x" + address.ToString("x") + " failed: " + Marshal.GetLastWin32Error());
            return buf;
        }

        public override System.Collections.Generic.List<(ulong Start, ulong End)> CaveRegions()
        {
            var caves = new System.Collections.Generic.List<(ulong, ulong)>();
            ulong address = 0x10000;
            while (address < 0x7FFF_FFFF_0000UL && VirtualQueryEx(_handle, (IntPtr)(long)address, out var mbi, (IntPtr)Marshal.SizeOf<MEMORY_BASIC_INFORMATION>()) != IntPtr.Zero)
            {
                bool privateExec = mbi.State == MEM_COMMIT && mbi.Type == MEM_PRIVATE && (mbi.Protect & (PAGE_EXECUTE | PAGE_EXECUTE_READ | PAGE_EXECUTE_READWRITE | PAGE_EXECUTE_WRITECOPY)) != 0;
                ulong start = (ulong)(long)mbi.BaseAddress, next = start + (ulong)(long)mbi.RegionSize;
                if (privateExec)
                {
                    var head = new byte[8];
                    if (ReadProcessMemory(_handle, mbi.BaseAddress, head, (IntPtr)8, out _) && head.AsSpan().SequenceEqual(CaveMagic)) caves.Add((start, next));
                }
                if (next <= address) break;
                address = next;
            }
            return caves;
        }

        public override void Kill()
        {
            try { if (!_process.HasExited) _process.Kill(); } catch (InvalidOperationException) { }
        }

        public override void Dispose()
        {
            base.Dispose();
            CloseHandle(_handle);
            _process.Dispose();
        }
    }
}
