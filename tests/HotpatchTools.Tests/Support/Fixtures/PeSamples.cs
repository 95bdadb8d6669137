namespace HotpatchTools.Tests.Support
{
    /// <summary>Small PE files cross-compiled with MinGW once for all tests of <see cref="PeImageTests"/>.</summary>
    public sealed class PeSamples : SampleFolder
    {
        public const string Gcc64 = "x86_64-w64-mingw32-gcc", Gcc32 = "i686-w64-mingw32-gcc";
        public const string Prefix64 = "x86_64-w64-mingw32-", Prefix32 = "i686-w64-mingw32-";

        private const string LibSource = @"
int counter = 5;
int add(int a, int b) { return a + b + counter; }
static __attribute__((noinline)) int triple(int x) { return x * 3 + counter; }
int use(int x) { return triple(x) + 1; }
";

        // Ordinals with gaps, a data export, an export by ordinal only, and the three kinds of forwarder.
        private const string LibDef = @"EXPORTS
use @2
add @5
counter @6 DATA
Forwarded = kernel32.GetTickCount @7
hidden = add @9 NONAME
ByOrdinal = ""ntdll.#12"" @10
ApiSet = ""api-ms-win-core-sysinfo-l1-1-0.dll.GetTickCount"" @11
";

        private const string ExeSource = @"
#include <stdio.h>
volatile int sink;
int counter = 5;
__declspec(dllexport) int add(int a, int b) { return a + b + counter; }
static __attribute__((noinline)) int triple(int x) { sink = x; return x * 3 + counter; }
__declspec(dllexport) int use(int x) { return triple(x) + 1; }
__declspec(dllexport) int shadow(int x) { return x + 11; }
int call_twin(int x);
__attribute__((noinline)) int under(int x) { sink = x; return x - 1; }
__attribute__((noinline)) int _under(int x) { sink = x; return x + 1; }
int main(void) { printf(""%d\n"", use(3) + add(1, 2) + call_twin(4) + under(1) + _under(2)); return 0; }
";

        // shadow is file-local here and exported in the other file, to check which one resolves.
        private const string TwinSource = @"
static __attribute__((noinline)) int shadow(int x) { return x - 7; }
int call_twin(int x) { return shadow(x) * 2; }
";

        public PeSamples() : base("peimage-")
        {
            string lib = Write("lib.c", LibSource), def = Write("lib.def", LibDef);
            string exe = Write("exe.c", ExeSource), twin = Write("twin.c", TwinSource);

            Dll64 = Compile(Gcc64, "lib64.dll", "-O1", "-shared", lib, def);
            Exe64 = Compile(Gcc64, "exe64.exe", "-O1", exe, twin);
            Dll32 = Compile(Gcc32, "lib32.dll", "-O1", "-shared", lib, def);
            Exe32 = Compile(Gcc32, "exe32.exe", "-O1", exe, twin);
            Stripped32 = Compile(Gcc32, "stripped32.exe", "-O1", "-s", exe, twin);
        }

        public string Dll64 { get; }
        public string Exe64 { get; }
        public string Dll32 { get; }
        public string Exe32 { get; }
        public string Stripped32 { get; }
    }
}
