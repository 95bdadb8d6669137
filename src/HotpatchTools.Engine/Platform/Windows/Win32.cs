using System.Runtime.InteropServices;
using System.Text;

namespace HotpatchTools.Engine.Platform.Windows
{
    /// <summary>Every Win32 call of the engine (all implemented by Wine as well, but event tracing: Wine 8 cannot open a trace, see WindowsProcessEvents).</summary>
    internal static class Win32
    {
        public const uint PROCESS_VM_OPERATION = 0x0008, PROCESS_VM_READ = 0x0010, PROCESS_VM_WRITE = 0x0020, PROCESS_QUERY_INFORMATION = 0x0400;
        public const uint THREAD_SUSPEND_RESUME = 0x0002, THREAD_GET_CONTEXT = 0x0008, THREAD_QUERY_INFORMATION = 0x0040;
        public const uint TH32CS_SNAPPROCESS = 0x2, TH32CS_SNAPTHREAD = 0x4;
        public const uint MEM_COMMIT = 0x1000, MEM_RESERVE = 0x2000, MEM_RELEASE = 0x8000, MEM_FREE = 0x10000, MEM_PRIVATE = 0x20000;
        public const uint PAGE_EXECUTE = 0x10, PAGE_EXECUTE_READ = 0x20, PAGE_EXECUTE_READWRITE = 0x40, PAGE_EXECUTE_WRITECOPY = 0x80;
        public const uint PAGE_READONLY = 0x02, PAGE_READWRITE = 0x04, PAGE_WRITECOPY = 0x08, PAGE_GUARD = 0x100, PAGE_NOACCESS = 0x01;
        public const int LIST_MODULES_32BIT = 1, LIST_MODULES_ALL = 3;
        public const int ERROR_ACCESS_DENIED = 5, ERROR_INVALID_PARAMETER = 87, ERROR_PARTIAL_COPY = 299, ERROR_INVALID_ADDRESS = 487;
        public const uint CONTEXT_AMD64_CONTROL = 0x00100001, WOW64_CONTEXT_CONTROL = 0x00010001;
        public const int ContextSize = 1232, ContextFlagsOffset = 0x30, ContextRspOffset = 0x98, ContextRipOffset = 0xF8;
        public const int Wow64ContextSize = 716, Wow64EipOffset = 0xB8, Wow64EspOffset = 0xC4;

        [StructLayout(LayoutKind.Sequential)]
        public struct MEMORY_BASIC_INFORMATION
        {
            public IntPtr BaseAddress, AllocationBase;
            public uint AllocationProtect;
            public IntPtr RegionSize;
            public uint State, Protect, Type;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct MODULEINFO
        {
            public IntPtr lpBaseOfDll;
            public uint SizeOfImage;
            public IntPtr EntryPoint;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct THREADENTRY32
        {
            public uint dwSize, cntUsage, th32ThreadID, th32OwnerProcessID;
            public int tpBasePri, tpDeltaPri;
            public uint dwFlags;
        }

        [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
        public struct PROCESSENTRY32W
        {
            public uint dwSize, cntUsage, th32ProcessID;
            public IntPtr th32DefaultHeapID;
            public uint th32ModuleID, cntThreads, th32ParentProcessID;
            public int pcPriClassBase;
            public uint dwFlags;
            [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 260)] public string szExeFile;
        }

        [DllImport("kernel32.dll", SetLastError = true)] public static extern IntPtr OpenProcess(uint access, bool inherit, int pid);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool CloseHandle(IntPtr h);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool GetExitCodeProcess(IntPtr h, out uint code);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool GetExitCodeThread(IntPtr h, out uint code);
        public const uint STILL_ACTIVE = 259;
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool IsWow64Process(IntPtr h, out bool wow64);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool ReadProcessMemory(IntPtr h, IntPtr address, byte[] buffer, IntPtr size, out IntPtr read);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool WriteProcessMemory(IntPtr h, IntPtr address, byte[] buffer, IntPtr size, out IntPtr written);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool VirtualProtectEx(IntPtr h, IntPtr address, IntPtr size, uint protect, out uint old);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern IntPtr VirtualQueryEx(IntPtr h, IntPtr address, out MEMORY_BASIC_INFORMATION info, IntPtr length);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern IntPtr VirtualAllocEx(IntPtr h, IntPtr address, IntPtr size, uint type, uint protect);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool VirtualFreeEx(IntPtr h, IntPtr address, IntPtr size, uint type);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool FlushInstructionCache(IntPtr h, IntPtr address, IntPtr size);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern IntPtr CreateToolhelp32Snapshot(uint flags, int pid);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool Thread32First(IntPtr snap, ref THREADENTRY32 e);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool Thread32Next(IntPtr snap, ref THREADENTRY32 e);
        [DllImport("kernel32.dll", SetLastError = true, CharSet = CharSet.Unicode)] public static extern bool Process32FirstW(IntPtr snap, ref PROCESSENTRY32W e);
        [DllImport("kernel32.dll", SetLastError = true, CharSet = CharSet.Unicode)] public static extern bool Process32NextW(IntPtr snap, ref PROCESSENTRY32W e);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern IntPtr OpenThread(uint access, bool inherit, int tid);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern uint SuspendThread(IntPtr h);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern uint ResumeThread(IntPtr h);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool GetThreadContext(IntPtr h, IntPtr context);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool Wow64GetThreadContext(IntPtr h, IntPtr context);
        // The debug-object freeze (WindowsFrozenProcess). These calls act on the calling thread's debug object.
        public const int EXCEPTION_DEBUG_EVENT = 1, CREATE_THREAD_DEBUG_EVENT = 2, CREATE_PROCESS_DEBUG_EVENT = 3, EXIT_THREAD_DEBUG_EVENT = 4,
            EXIT_PROCESS_DEBUG_EVENT = 5, LOAD_DLL_DEBUG_EVENT = 6;
        public const uint DBG_CONTINUE = 0x00010002, DBG_EXCEPTION_NOT_HANDLED = 0x80010001;
        public const uint EXCEPTION_BREAKPOINT = 0x80000003, STATUS_WX86_BREAKPOINT = 0x4000001F;
        /// <summary>DEBUG_EVENT: three DWORDs, then the union at pointer alignment; 256 bytes hold it on either bitness.</summary>
        public const int DebugEventSize = 256;
        public static int DebugEventUnionOffset => IntPtr.Size == 8 ? 16 : 12;
        [DllImport("ntdll.dll")] public static extern int DbgUiConnectToDbg();
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool DebugSetProcessKillOnExit(bool kill);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool DebugActiveProcess(int pid);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool DebugActiveProcessStop(int pid);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool WaitForDebugEvent(IntPtr debugEvent, uint milliseconds);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool ContinueDebugEvent(int pid, int tid, uint status);
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool CheckRemoteDebuggerPresent(IntPtr process, out bool present);
        public const int ERROR_SEM_TIMEOUT = 121;
        [DllImport("kernel32.dll")] public static extern int GetCurrentProcessId();
        [DllImport("kernel32.dll")] public static extern IntPtr GetCurrentProcess();
        [DllImport("psapi.dll", SetLastError = true)] public static extern bool EnumProcessModulesEx(IntPtr h, [Out] IntPtr[] modules, int cb, out int needed, int filter);
        [DllImport("psapi.dll", SetLastError = true, CharSet = CharSet.Unicode)] public static extern int GetModuleBaseNameW(IntPtr h, IntPtr module, StringBuilder name, int size);
        [DllImport("psapi.dll", SetLastError = true, CharSet = CharSet.Unicode)] public static extern int GetModuleFileNameExW(IntPtr h, IntPtr module, StringBuilder name, int size);
        [DllImport("psapi.dll", SetLastError = true)] public static extern bool GetModuleInformation(IntPtr h, IntPtr module, out MODULEINFO info, int size);

        [DllImport("advapi32.dll", SetLastError = true)] public static extern bool OpenProcessToken(IntPtr process, uint access, out IntPtr token);
        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)] public static extern bool LookupPrivilegeValueW(string? system, string name, out long luid);
        [DllImport("advapi32.dll", SetLastError = true)] public static extern bool AdjustTokenPrivileges(IntPtr token, bool disableAll, ref TOKEN_PRIVILEGES state, int length, IntPtr prev, IntPtr returned);

        [StructLayout(LayoutKind.Sequential, Pack = 4)]
        public struct TOKEN_PRIVILEGES
        {
            public uint PrivilegeCount;
            public long Luid;
            public uint Attributes;
        }

        public static bool IsExecutable(uint protect) => (protect & (PAGE_EXECUTE | PAGE_EXECUTE_READ | PAGE_EXECUTE_READWRITE | PAGE_EXECUTE_WRITECOPY)) != 0;

        public static bool IsReadable(uint protect) =>
            (protect & (PAGE_READONLY | PAGE_READWRITE | PAGE_WRITECOPY | PAGE_EXECUTE_READ | PAGE_EXECUTE_READWRITE | PAGE_EXECUTE_WRITECOPY)) != 0 && (protect & PAGE_GUARD) == 0;

        public static string Message(int error) => new System.ComponentModel.Win32Exception(error).Message + " (error " + error + ")";

        /// <summary>Each thread of the machine, from one Toolhelp snapshot; none when no snapshot can be taken.</summary>
        public static void ForEachThread(Action<THREADENTRY32> visit) =>
            ForEachEntry(TH32CS_SNAPTHREAD, new THREADENTRY32 { dwSize = (uint)Marshal.SizeOf<THREADENTRY32>() }, Thread32First, Thread32Next, visit);

        /// <summary>Each process of the machine, from one Toolhelp snapshot; none when no snapshot can be taken.</summary>
        public static void ForEachProcess(Action<PROCESSENTRY32W> visit) =>
            ForEachEntry(TH32CS_SNAPPROCESS, new PROCESSENTRY32W { dwSize = (uint)Marshal.SizeOf<PROCESSENTRY32W>() }, Process32FirstW, Process32NextW, visit);

        private delegate bool SnapshotStep<T>(IntPtr snapshot, ref T entry);

        private static void ForEachEntry<T>(uint flags, T entry, SnapshotStep<T> first, SnapshotStep<T> next, Action<T> visit)
        {
            IntPtr snap = CreateToolhelp32Snapshot(flags, 0);
            if (snap == new IntPtr(-1)) return;
            try
            {
                for (bool ok = first(snap, ref entry); ok; ok = next(snap, ref entry)) visit(entry);
            }
            finally { CloseHandle(snap); }
        }

        // ---- tokens, file security and the event log (the privilege check, the trust store, the audit trail) ----

        public const uint TOKEN_QUERY = 0x0008;
        public const int TokenElevation = 20;

        [DllImport("advapi32.dll", SetLastError = true)] public static extern bool GetTokenInformation(IntPtr token, int cls, out int value, int length, out int returned);

        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        public static extern bool ConvertStringSecurityDescriptorToSecurityDescriptorW(string sddl, uint revision, out IntPtr descriptor, IntPtr size);
        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        public static extern bool SetFileSecurityW(string path, uint information, IntPtr descriptor);
        [DllImport("kernel32.dll")] public static extern IntPtr LocalFree(IntPtr h);

        public const uint DACL_SECURITY_INFORMATION = 0x4, PROTECTED_DACL_SECURITY_INFORMATION = 0x80000000, OWNER_SECURITY_INFORMATION = 0x1;
        public const int SE_FILE_OBJECT = 1, TokenUser = 1;

        // FILETIMEs are two DWORDs: 4-byte packing keeps the layout of BY_HANDLE_FILE_INFORMATION.
        [StructLayout(LayoutKind.Sequential, Pack = 4)]
        public struct FileInformation
        {
            public uint Attributes;
            public long CreationTime, LastAccessTime, LastWriteTime;
            public uint VolumeSerialNumber, FileSizeHigh, FileSizeLow, NumberOfLinks, FileIndexHigh, FileIndexLow;
        }

        [DllImport("kernel32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        public static extern Microsoft.Win32.SafeHandles.SafeFileHandle CreateFileW(string name, uint access, uint share, IntPtr security, uint disposition, uint flags, IntPtr template);
        [DllImport("kernel32.dll", SetLastError = true)]
        public static extern bool GetFileInformationByHandle(Microsoft.Win32.SafeHandles.SafeFileHandle h, out FileInformation info);
        [DllImport("kernel32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        public static extern uint GetFinalPathNameByHandleW(Microsoft.Win32.SafeHandles.SafeFileHandle h, [Out] char[] path, uint length, uint flags);
        [DllImport("advapi32.dll")]
        public static extern uint GetSecurityInfo(Microsoft.Win32.SafeHandles.SafeFileHandle h, int objectType, uint information, out IntPtr owner, IntPtr group, out IntPtr dacl, IntPtr sacl, out IntPtr descriptor);
        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        public static extern bool ConvertSidToStringSidW(IntPtr sid, out IntPtr text);
        [DllImport("advapi32.dll", SetLastError = true, EntryPoint = "GetTokenInformation")]
        public static extern bool GetTokenInformationBuffer(IntPtr token, int cls, IntPtr buffer, int length, out int returned);

        /// <summary>The string form (S-1-...) of a SID, or null.</summary>
        public static string? SidString(IntPtr sid)
        {
            if (sid == IntPtr.Zero || !ConvertSidToStringSidW(sid, out var text)) return null;
            try { return Marshal.PtrToStringUni(text); }
            finally { LocalFree(text); }
        }

        /// <summary>The SID of the user this process runs as, or null.</summary>
        public static string? CurrentUserSid()
        {
            if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, out var token)) return null;
            var buffer = Marshal.AllocHGlobal(512);
            try
            {
                // TOKEN_USER starts with the SID pointer of its SID_AND_ATTRIBUTES.
                return GetTokenInformationBuffer(token, TokenUser, buffer, 512, out _) ? SidString(Marshal.ReadIntPtr(buffer)) : null;
            }
            finally
            {
                Marshal.FreeHGlobal(buffer);
                CloseHandle(token);
            }
        }

        // ---- event tracing: process starts and image loads for the watch (WindowsProcessEvents) ----

        /// <summary>Microsoft-Windows-Kernel-Process; its keywords WINEVENT_KEYWORD_PROCESS (0x10) and WINEVENT_KEYWORD_IMAGE (0x40).</summary>
        public static readonly Guid KernelProcessProvider = new Guid("22FB2CD6-0E7B-422B-A0C7-2FAD1FD0E716");
        public const ulong KeywordProcess = 0x10, KeywordImage = 0x40;
        public const uint WNODE_FLAG_TRACED_GUID = 0x00020000, EVENT_TRACE_REAL_TIME_MODE = 0x100, EVENT_TRACE_USE_MS_FLUSH_TIMER = 0x10;
        public const uint EVENT_TRACE_CONTROL_STOP = 1, EVENT_CONTROL_CODE_ENABLE_PROVIDER = 1;
        public const uint PROCESS_TRACE_MODE_REAL_TIME = 0x100, PROCESS_TRACE_MODE_EVENT_RECORD = 0x10000000;
        public const byte TRACE_LEVEL_INFORMATION = 4;
        public const ushort EVENT_HEADER_FLAG_32_BIT_HEADER = 0x20;
        public const int ERROR_ALREADY_EXISTS = 183, ERROR_MORE_DATA = 234, ERROR_WMI_INSTANCE_NOT_FOUND = 4201;

        // EVENT_TRACE_PROPERTIES: a WNODE_HEADER (48 bytes), ULONGs, a HANDLE, the two name offsets; 8-byte aligned on both bitnesses.
        public const int EtpBufferSize = 48, EtpMinimumBuffers = 52, EtpMaximumBuffers = 56, EtpLogFileMode = 64, EtpFlushTimer = 68;
        public const int EtpWnodeBufferSize = 0, EtpWnodeGuid = 24, EtpWnodeClientContext = 40, EtpWnodeFlags = 44, EtpSize = 120;
        public static int EtpLogFileNameOffset => 104 + IntPtr.Size;
        public static int EtpLoggerNameOffset => 108 + IntPtr.Size;

        // EVENT_TRACE_LOGFILEW: where OpenTraceW reads the session name, the mode and the callback (x64 and x86 layouts).
        public static int LogfileSize => IntPtr.Size == 8 ? 448 : 416;
        public static int LogfileLoggerName => IntPtr.Size;
        public static int LogfileProcessTraceMode => IntPtr.Size == 8 ? 28 : 20;
        public static int LogfileEventRecordCallback => IntPtr.Size == 8 ? 424 : 400;

        // EVENT_RECORD: EVENT_HEADER (80 bytes), ETW_BUFFER_CONTEXT (4), ExtendedDataCount, UserDataLength, then pointers.
        public const int ErFlags = 4, ErProviderId = 24, ErEventId = 40, ErUserDataLength = 86;
        public static int ErUserData => 88 + IntPtr.Size;

        /// <summary>Called by ProcessTrace on its thread with an EVENT_RECORD*.</summary>
        [UnmanagedFunctionPointer(CallingConvention.Winapi)] public delegate void EventRecordCallback(IntPtr eventRecord);

        [DllImport("advapi32.dll", CharSet = CharSet.Unicode)] public static extern int StartTraceW(out ulong handle, string name, IntPtr properties);
        [DllImport("advapi32.dll", CharSet = CharSet.Unicode)] public static extern int ControlTraceW(ulong handle, string? name, IntPtr properties, uint control);
        [DllImport("advapi32.dll")] public static extern int QueryAllTracesW([In] IntPtr[] properties, uint count, out uint returned);
        [DllImport("advapi32.dll")]
        public static extern int EnableTraceEx2(ulong handle, ref Guid provider, uint control, byte level, ulong matchAny, ulong matchAll, uint timeout, IntPtr parameters);
        [DllImport("advapi32.dll", SetLastError = true)] public static extern ulong OpenTraceW(IntPtr logfile);
        [DllImport("advapi32.dll")] public static extern int ProcessTrace([In] ulong[] handles, uint count, IntPtr startTime, IntPtr endTime);
        [DllImport("advapi32.dll")] public static extern int CloseTrace(ulong handle);

        /// <summary>The process list with each process's creation time, in one call (SystemProcessInformation).</summary>
        public const int SystemProcessInformation = 5, STATUS_INFO_LENGTH_MISMATCH = unchecked((int)0xC0000004);
        // SYSTEM_PROCESS_INFORMATION: NextEntryOffset (ULONG), CreateTime at 32, UniqueProcessId after the image name and base priority.
        public const int SpiNextEntryOffset = 0, SpiCreateTime = 32;
        public static int SpiUniqueProcessId => IntPtr.Size == 8 ? 80 : 68;
        [DllImport("ntdll.dll")] public static extern int NtQuerySystemInformation(int infoClass, IntPtr buffer, int length, out int returned);

        /// <summary>INVALID_PROCESSTRACE_HANDLE: INVALID_HANDLE_VALUE widened, which a 32-bit process sees as 0xFFFFFFFF.</summary>
        public static bool IsInvalidTrace(ulong h) => h == ulong.MaxValue || h == 0xFFFFFFFFUL || h == 0;

        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)] public static extern IntPtr RegisterEventSourceW(string? server, string source);
        [DllImport("advapi32.dll", SetLastError = true)] public static extern bool DeregisterEventSource(IntPtr h);
        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        public static extern bool ReportEventW(IntPtr h, ushort type, ushort category, uint eventId, IntPtr sid, ushort strings, uint dataSize, string[] text, IntPtr data);
    }
}
