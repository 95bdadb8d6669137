using System.Runtime.InteropServices;

namespace HotpatchTools.Engine.Platform.Windows
{
    internal sealed class WindowsPlatform : IProcessPlatform, IProcessEventPlatform
    {
        /// <summary>
        /// Refused in a 32-bit process on 64-bit Windows, as a whole: it cannot open the 64-bit processes, so every
        /// sweep, compliance check and enforcement pass would pass over them and report the machine without them.
        /// </summary>
        public WindowsPlatform()
        {
            if (Environment.Is64BitOperatingSystem && !Environment.Is64BitProcess)
                throw new HotpatchException(HotpatchErrorKind.PlatformNotSupported,
                    "This is a 32-bit process on 64-bit Windows: it can neither read nor patch 64-bit processes, so it would leave them out of every answer. " +
                    "Run 64-bit PowerShell (for Intune scripts: set 'Run script in 64-bit PowerShell' to Yes).");
        }

        /// <summary>An ETW session where it can be had; else the process list polled, with the reason ETW could not be used.</summary>
        public IProcessEvents? OpenEvents(Action<string>? log)
        {
            var etw = WindowsProcessEvents.TryOpen(log, out var why);
            if (etw != null) return etw;
            log?.Invoke("ETW process events unavailable: " + why);
            return ProcessListEvents.TryOpen(why ?? "?", log);
        }

        private static bool _debugPrivilegeTried;

        public Format.TargetOs Os => Format.TargetOs.Windows;

        public IReadOnlyList<ProcessInfo> ListProcesses()
        {
            var list = new List<ProcessInfo>();
            Win32.ForEachProcess(e => { if (e.th32ProcessID != 0) list.Add(new ProcessInfo((int)e.th32ProcessID, e.szExeFile)); });
            list.Sort((a, b) => a.Id.CompareTo(b.Id));
            return list;
        }

        public ITargetProcess Open(int processId)
        {
            LiveTargetProcess.RefuseSelf(processId, "it cannot patch itself.");
            EnableDebugPrivilege();
            // Reading needs no more than this; write rights are asked for only when something is written.
            IntPtr h = Win32.OpenProcess(Win32.PROCESS_QUERY_INFORMATION | Win32.PROCESS_VM_READ, false, processId);
            if (h == IntPtr.Zero)
            {
                int err = Marshal.GetLastWin32Error();
                if (err == Win32.ERROR_INVALID_PARAMETER)
                    throw new HotpatchException(HotpatchErrorKind.ProcessNotFound, "No process with id " + processId + " is running.") { ProcessId = processId };
                throw Denied(processId, err);
            }
            return new WindowsTargetProcess(processId, h, NameOf(processId));
        }

        internal static HotpatchException Denied(int pid, int err) =>
            new HotpatchException(HotpatchErrorKind.AccessDenied,
                "Access to process " + pid + " was denied (" + Win32.Message(err) + "). Run PowerShell elevated (as Administrator or SYSTEM); protected processes (PPL) cannot be patched.") { ProcessId = pid };

        private string NameOf(int pid)
        {
            foreach (var p in ListProcesses()) if (p.Id == pid) return p.Name;
            return "?";
        }

        /// <summary>Administrators hold SeDebugPrivilege disabled; enabling it reaches services of other users.</summary>
        private static void EnableDebugPrivilege()
        {
            if (_debugPrivilegeTried) return;
            _debugPrivilegeTried = true;
            const uint TOKEN_ADJUST_PRIVILEGES = 0x20, TOKEN_QUERY = 0x8, SE_PRIVILEGE_ENABLED = 0x2;
            if (!Win32.OpenProcessToken(Win32.GetCurrentProcess(), TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY, out var token)) return;
            try
            {
                if (!Win32.LookupPrivilegeValueW(null, "SeDebugPrivilege", out long luid)) return;
                var tp = new Win32.TOKEN_PRIVILEGES { PrivilegeCount = 1, Luid = luid, Attributes = SE_PRIVILEGE_ENABLED };
                Win32.AdjustTokenPrivileges(token, false, ref tp, 0, IntPtr.Zero, IntPtr.Zero);
            }
            finally { Win32.CloseHandle(token); }
        }
    }
}
