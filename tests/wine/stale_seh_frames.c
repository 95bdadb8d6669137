/* Loaded by the Wine test program (WineSehFix.cs) to keep Wine 8 from hanging it after the first caught exception.
 *
 * Wine's x86_64 dispatcher pushes a frame on the TEB exception list around each language handler it calls and pops
 * it when the handler returns. CoreCLR's exception handling (.NET 9 on) never returns from that call when it resumes
 * managed code at a catch: it jumps there with RtlRestoreContext, so the frame stays on the list, in stack memory
 * that is then reused. A later exception raised deeper on the same thread makes Wine call that frame's "handler"
 * (garbage, e.g. 1): an access violation whose dispatch finds the same frame again, recursing into a stack overflow
 * that leaves the process waiting forever at 0 CPU. WINEDEBUG=+seh shows it as "found wine frame ... handler
 * 0000000000000001" repeated until EXCEPTION_STACK_OVERFLOW.
 *
 * Before any stack handler runs, this ends the list before the first frame that cannot be a live one: outside the
 * thread's stack or below the stack pointer of the code that raised, not below the frame it links to, or with a handler
 * outside every loaded module (Wine's own frames all have theirs in ntdll or another builtin DLL). The stale frame seen
 * here lay inside RaiseException's own exception record, so its address alone does not give it away; its contents do.
 * Frames past a broken one are reachable only through it, so they go with it; the outermost are __TRY blocks around
 * the thread's start, which only matter to an exception nothing else handles, and the runtime handles those itself.
 * On Windows the list holds no stale frames and this changes nothing. */
#include <windows.h>

#define LIST_END ((EXCEPTION_REGISTRATION_RECORD *)~(ULONG_PTR)0)

/* Checks the frame's place before reading it: a stale link may point anywhere. */
static int plausible(const EXCEPTION_REGISTRATION_RECORD *frame, ULONG_PTR sp, ULONG_PTR high)
{
    ULONG_PTR at = (ULONG_PTR)frame, next;
    void *module;
    if (at < sp || at + sizeof(*frame) > high || at % sizeof(void *)) return 0;
    next = (ULONG_PTR)frame->Next;
    if (frame->Next != LIST_END && (next <= at || next + sizeof(*frame) > high)) return 0;
    return RtlPcToFileHeader((void *)frame->Handler, &module) != NULL;
}

static LONG CALLBACK drop_stale_frames(EXCEPTION_POINTERS *ptrs)
{
    NT_TIB *tib = (NT_TIB *)NtCurrentTeb();
    ULONG_PTR sp = ptrs->ContextRecord->Rsp;
    ULONG_PTR low = (ULONG_PTR)tib->StackLimit, high = (ULONG_PTR)tib->StackBase;
    EXCEPTION_REGISTRATION_RECORD **link = &tib->ExceptionList;

    /* An exception raised on another stack than the thread's own says nothing about the thread's frames. */
    if (sp < low || sp >= high) return EXCEPTION_CONTINUE_SEARCH;
    /* Each frame kept lies in the stack above the one before it: the walk ends. */
    while (*link && *link != LIST_END)
    {
        if (!plausible(*link, sp, high)) { *link = LIST_END; break; }
        link = &(*link)->Next;
    }
    return EXCEPTION_CONTINUE_SEARCH;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance; (void)reserved;
    if (reason == DLL_PROCESS_ATTACH && !AddVectoredExceptionHandler(1, drop_stale_frames)) return FALSE;
    return TRUE;
}
