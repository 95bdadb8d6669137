namespace HotpatchTools.Tests.Support
{
    /// <summary>Small ELF files compiled once for all tests of <see cref="ElfImageTests"/>.</summary>
    public sealed class ElfSamples : SampleFolder
    {
        private const string LibSource = @"
int counter = 5;
int add(int a, int b) { return a + b + counter; }
static __attribute__((noinline)) int triple(int x) { return x * 3 + counter; }
int use(int x) { return triple(x) + 1; }
";

        // shared_name is file-local here and global in the other file, to check which one resolves.
        private const string LocalTwinSource = @"
static __attribute__((noinline)) int shared_name(int x) { return x - 7; }
int call_local_twin(int x) { return shared_name(x) * 2; }
";

        private const string GlobalTwinSource = @"
int shared_name(int x) { return x + 11; }
";

        private const string MainSource = @"
#include <stdio.h>
volatile int sink;
__attribute__((noinline)) int helper(int x) { sink = x; return x * 2 + 1; }
int main(void) { printf(""%d\n"", helper(3)); return 0; }
";

        public ElfSamples() : base("elfimage-")
        {
            string lib = Write("lib.c", LibSource), main = Write("main.c", MainSource);
            string localTwin = Write("local_twin.c", LocalTwinSource), globalTwin = Write("global_twin.c", GlobalTwinSource);

            SharedLibrary = Compile("gcc", "libtest.so", "-O1", "-shared", "-fPIC", "-Wl,--build-id=sha1", lib, localTwin, globalTwin);
            PieExecutable = Compile("gcc", "pie", "-O1", "-fPIE", "-pie", "-Wl,--build-id=sha1", main);
            NonPieExecutable = Compile("gcc", "nopie", "-O1", "-fno-pie", "-no-pie", "-Wl,--build-id=sha1", main);
            NoBuildId = Compile("gcc", "nobuildid.so", "-O1", "-shared", "-fPIC", "-Wl,--build-id=none", lib);
            // -nostdlib: the 32-bit libgcc and crt files are not installed, and a shared object needs neither.
            SharedLibrary32 = Compile("gcc", "libtest32.so", "-m32", "-O1", "-shared", "-fPIC", "-nostdlib", "-Wl,--build-id=sha1", lib);
            Stripped = Strip(SharedLibrary, "stripped.so");
        }

        public string SharedLibrary { get; }
        public string PieExecutable { get; }
        public string NonPieExecutable { get; }
        public string NoBuildId { get; }
        public string SharedLibrary32 { get; }
        public string Stripped { get; }
    }
}
