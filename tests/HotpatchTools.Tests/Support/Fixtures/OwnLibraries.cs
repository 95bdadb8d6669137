using HotpatchTools.Engine.Modules;
using Iced.Intel;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// Libraries built here the way distributions build theirs: with -fcf-protection (endbr64 at every entry), split
    /// into a stripped file and a debug file, and without unwind tables. A host dlopens one and calls it by name.
    /// </summary>
    public sealed class OwnLibraries : SampleFolder
    {
        private const string Lib = @"
static __attribute__((noinline)) int hidden_scale(int x)
{
    int r = 0;
    for (int i = 0; i < x; i++) r += i * 3 + 1;
    return r + x;
}
int twice(int x) { return hidden_scale(x) * 2; }
int seven(int x) { return x * 7 + 3 - x / 5 + (x >> 2); }
";

        private const string Host = @"
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) { printf(""error %s\n"", dlerror()); return 1; }
    /* A second copy under the same name (as a container's beside the host's): '@name' calls into it. */
    void *other = argc > 2 ? dlopen(argv[2], RTLD_NOW) : lib;
    if (!other) { printf(""error %s\n"", dlerror()); return 1; }
    printf(""ready host\n"");
    fflush(stdout);
    char name[64];
    int x;
    while (scanf(""%63s %d"", name, &x) == 2)
    {
        int (*fn)(int) = name[0] == '@' ? (int (*)(int))dlsym(other, name + 1) : (int (*)(int))dlsym(lib, name);
        if (fn) printf(""%d\n"", fn(x)); else printf(""nosym\n"");
        fflush(stdout);
    }
    return 0;
}
";

        // hot's cold part lies apart, with an FDE of its own and no symbol once stripped, and jumps back to `back`:
        // inside the 5 bytes an insert at hot overwrites. hot itself has no branch there.
        private const string ColdAsm = @"
    .intel_syntax noprefix
    .text
    .globl hot
    .type hot, @function
hot:
    .cfi_startproc
    mov eax, edi
back:
    add eax, 1
    test eax, eax
    js hot_cold
    ret
    .cfi_endproc
    .size hot, .-hot

    .section .text.unlikely, ""ax"", @progbits
hot_cold:
    .cfi_startproc
    xor eax, eax
    jmp back
    .cfi_endproc
    .section .note.GNU-stack, """", @progbits
";

        public OwnLibraries() : base("ownlibs-")
        {
            string lib = Write("lib.c", Lib), host = Write("host.c", Host);
            HostExe = Path.Combine(Dir, "host");
            NativeBuild.Run("gcc", "-O2", "-o", HostExe, host, "-ldl");

            Cet = Build("libcet.so", lib, "-fcf-protection=full");

            // Split as Debian's dh_strip does: the debug file keeps .symtab, the library keeps a link to it.
            SplitFull = Build("libsplit.full.so", lib, "-g", "-DSPLIT=1");
            NativeBuild.Run("objcopy", "--only-keep-debug", SplitFull, Path.Combine(Dir, "libsplit.so.debug"));
            Split = Strip(SplitFull, "libsplit.so");
            NativeBuild.Run("objcopy", "--add-gnu-debuglink=" + Path.Combine(Dir, "libsplit.so.debug"), Split);

            // Found only by build-id, in a folder an admin configures.
            ByIdFull = Build("libbyid.full.so", lib, "-g", "-DBYID=1");
            ById = Strip(ByIdFull, "libbyid.so");
            string id = ElfImage.Load(ById).BuildId!;
            DebugRoot = Path.Combine(Dir, "debug");
            Directory.CreateDirectory(Path.Combine(DebugRoot, ".build-id", id[..2]));
            NativeBuild.Run("objcopy", "--only-keep-debug", ByIdFull, Path.Combine(DebugRoot, ".build-id", id[..2], id[2..] + ".debug"));

            string coldAsm = Write("cold.S", ColdAsm);
            ColdFull = Build("libcold.full.so", coldAsm, "-nostdlib");
            Cold = Strip(ColdFull, "libcold.so");
            // The same code under a build-id of its own, which no other test (nor an earlier run) has met.
            ColdOwnFull = Build("libcoldown.full.so", coldAsm, "-nostdlib", "-Wl,--build-id=0x" + Guid.NewGuid().ToString("n"));
            ColdOwn = Strip(ColdOwnFull, "libcoldown.so");

            // Two builds of one library under one name, in two folders.
            Directory.CreateDirectory(Path.Combine(Dir, "a"));
            Directory.CreateDirectory(Path.Combine(Dir, "b"));
            DupA = Build(Path.Combine("a", "libdup.so"), lib, "-O1");
            DupB = Build(Path.Combine("b", "libdup.so"), lib);

            NoFdeFull = Build("libnofde.full.so", lib, "-fno-asynchronous-unwind-tables", "-fno-unwind-tables");
            NoFde = Strip(NoFdeFull, "libnofde.so");
        }

        public string HostExe { get; }
        public string Cet { get; }
        public string SplitFull { get; }
        public string Split { get; }
        public string ByIdFull { get; }
        public string ById { get; }
        public string DebugRoot { get; }
        public string NoFdeFull { get; }
        public string ColdFull { get; }
        public string DupA { get; }
        public string DupB { get; }
        public string Cold { get; }
        public string ColdOwnFull { get; }
        public string ColdOwn { get; }
        public string NoFde { get; }

        private string Build(string name, string source, params string[] flags) =>
            Compile("gcc", name, new[] { "-O2", "-shared", "-fPIC", "-Wl,--build-id=sha1", source }.Concat(flags).ToArray());

        /// <summary>A symbol's value and size in an unstripped build.</summary>
        public static (ulong Rva, ulong Size) Symbol(string path, string name)
        {
            var s = ElfTools.Nm(path, dynamic: false).First(s => s.Name == name);
            return (s.Value, s.Size);
        }

        /// <summary>The file's bytes at rva: whole instructions covering at least minLength bytes (plus an endbr when skipEndbr).</summary>
        public static byte[] Expect(string path, ulong rva, int minLength, bool skipEndbr = false)
        {
            var image = ElfImage.Load(path);
            var segment = image.CodeSegments.First(s => rva >= s.Rva && rva - s.Rva < s.FileSize);
            var bytes = new byte[64];
            using (var f = File.OpenRead(path))
            {
                f.Position = (long)(segment.FileOffset + (rva - segment.Rva));
                f.ReadExactly(bytes);
            }
            var decoder = Decoder.Create(64, new ByteArrayCodeReader(bytes));
            int length = 0, need = minLength;
            while (length < need)
            {
                decoder.Decode(out var ins);
                if (length == 0 && skipEndbr && ins.Code == Code.Endbr64) need += ins.Length;
                length += ins.Length;
            }
            return bytes[..length];
        }
    }
}
