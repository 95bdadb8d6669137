using System.Threading.Tasks;
using HotpatchTools.Engine.Assembly;
using Iced.Intel;

namespace HotpatchTools.Tests
{
    public class AssemblerTests
    {
        private const ulong Site = 0x5555_5555_1000;
        private const ulong Cave = 0x5555_5556_0000;
        private const ulong FarFunction = 0x7f12_3456_7890;

        private static readonly Dictionary<string, ulong> Symbols = new Dictionary<string, ulong>
        {
            ["parse_record"] = 0x5555_5555_2000,
            ["counter"] = 0x5555_5555_9000,
            ["foo.bar"] = 0x5555_5555_9100,
            ["_Z3fooi"] = 0x5555_5555_2400,
            ["libc.so.6!getpid"] = FarFunction,
            ["kernel32.dll!GetCurrentProcessId"] = 0x5555_5555_a000,
            ["ld-linux-x86-64.so.2!_dl_debug_state"] = 0x5555_5555_b000,
            ["libstdc++.so.6!_ZdlPv"] = 0x5555_5555_c000,
        };

        private static ulong? Resolve(string name) => Symbols.TryGetValue(name, out var address) ? address : (ulong?)null;

        private static AsmProgram Assemble(string code, int bitness = 64) => IntelAssembler.Assemble(code, bitness, Site, Resolve);

        /// <summary>Encodes like the trampoline engine: the program, then relocated originals, then the jump back.</summary>
        private static byte[] EncodeBlock(IEnumerable<Instruction> instructions, ulong address, int bitness = 64)
        {
            var writer = new ByteWriter();
            var block = new InstructionBlock(writer, instructions.ToList(), address);
            Assert.True(BlockEncoder.TryEncode(bitness, block, out var error, out _, BlockEncoderOptions.None), error);
            return writer.Bytes.ToArray();
        }

        private static List<Instruction> Decode(byte[] code, ulong address, int count, int bitness = 64)
        {
            var decoder = Decoder.Create(bitness, new ByteArrayCodeReader(code), address);
            return Enumerable.Range(0, count).Select(_ => decoder.Decode()).ToList();
        }

        private static string Format(Instruction instruction) => InstructionText.Of(instruction, spacedMemoryOperands: true);

        private static string Listing(byte[] code, ulong address, int count, int bitness = 64) =>
            string.Join("\n", Decode(code, address, count, bitness).Select(i => i.IP.ToString("x") + " " + Format(i)));

        private static string Hex(IEnumerable<byte> bytes) => string.Concat(bytes.Select(b => b.ToString("x2")));

        private static AsmException Fails(string code, int bitness = 64, AsmSourceInfo? source = null) =>
            Assert.Throws<AsmException>(() => IntelAssembler.Assemble(code, bitness, Site, Resolve, source));

        private sealed class ByteWriter : CodeWriter
        {
            public List<byte> Bytes { get; } = new List<byte>();
            public override void WriteByte(byte value) => Bytes.Add(value);
        }

        // Expected bytes come from GNU as (`.intel_syntax noprefix`, --64).
        [Theory]
        [InlineData("mov rax, rbx", "4889d8")]
        [InlineData("mov eax, ebx", "89d8")]
        [InlineData("mov ax, bx", "6689d8")]
        [InlineData("mov al, bl", "88d8")]
        [InlineData("mov r8b, sil", "4188f0")]
        [InlineData("mov spl, dil", "4088fc")]
        [InlineData("mov ah, bh", "88fc")]
        [InlineData("mov r15d, r8d", "4589c7")]
        [InlineData("mov r9w, r10w", "664589d1")]
        [InlineData("mov rax, 0x1122334455667788", "48b88877665544332211")]
        [InlineData("mov rax, -1", "48c7c0ffffffff")]
        [InlineData("mov eax, 0xFFFFFFFF", "b8ffffffff")]
        [InlineData("mov rax, 0xFFFFFFFF", "48b8ffffffff00000000")]
        [InlineData("mov ecx, 5", "b905000000")]
        [InlineData("mov cl, 200", "b1c8")]
        [InlineData("mov word ptr [rax], 0x1234", "66c7003412")]
        [InlineData("mov qword ptr [rbp - 8], rdi", "48897df8")]
        [InlineData("mov rax, [rsp + 0x10]", "488b442410")]
        [InlineData("mov rax, [rbx + rcx*8 + 0x100]", "488b84cb00010000")]
        [InlineData("mov eax, [r12 + r13*4 - 4]", "438b44acfc")]
        [InlineData("mov byte ptr [rdi], 0", "c60700")]
        [InlineData("mov rax, qword ptr fs:[0x28]", "64488b042528000000")]
        [InlineData("mov rax, [fs:0x28]", "64488b042528000000")]
        [InlineData("mov eax, [ebx - 8]", "678b43f8")]
        [InlineData("mov rax, gs:[rcx]", "65488b01")]
        [InlineData("mov rax, [0x1000]", "488b042500100000")]
        [InlineData("lea rax, [rdi + rsi*2 + 3]", "488d447703")]
        [InlineData("lea r8, [r9*4]", "4e8d048d00000000")]
        [InlineData("lea eax, [eax + 1]", "678d4001")]
        [InlineData("movzx eax, byte ptr [rsi]", "0fb606")]
        [InlineData("movzx ecx, ax", "0fb7c8")]
        [InlineData("movsx rax, word ptr [rdx]", "480fbf02")]
        [InlineData("movsxd rax, dword ptr [rcx]", "486301")]
        [InlineData("movsx eax, bl", "0fbec3")]
        [InlineData("add rax, rbx", "4801d8")]
        [InlineData("add eax, 1", "83c001")]
        [InlineData("add rax, 0x1000", "480500100000")]
        [InlineData("add al, 5", "0405")]
        [InlineData("add ax, -1", "6683c0ff")]
        [InlineData("add qword ptr [rsp], 8", "4883042408")]
        [InlineData("sub rsp, 0x28", "4883ec28")]
        [InlineData("adc edx, 0", "83d200")]
        [InlineData("sbb rax, [rbx]", "481b03")]
        [InlineData("and rax, -16", "4883e0f0")]
        [InlineData("or byte ptr [rax + 1], 0x80", "80480180")]
        [InlineData("xor eax, eax", "31c0")]
        [InlineData("xor r10d, r10d", "4531d2")]
        [InlineData("cmp rdi, rsi", "4839f7")]
        [InlineData("cmp byte ptr [rdi], 0x2f", "803f2f")]
        [InlineData("cmp eax, 0x7fffffff", "3dffffff7f")]
        [InlineData("test rax, rax", "4885c0")]
        [InlineData("test al, 1", "a801")]
        [InlineData("test dword ptr [rax], 0x100", "f70000010000")]
        [InlineData("test [rax], ecx", "8508")]
        [InlineData("inc dword ptr [rax]", "ff00")]
        [InlineData("dec r11", "49ffcb")]
        [InlineData("neg rax", "48f7d8")]
        [InlineData("not ecx", "f7d1")]
        [InlineData("mul rcx", "48f7e1")]
        [InlineData("imul rax, rbx", "480fafc3")]
        [InlineData("imul eax, [rdi], 10", "6b070a")]
        [InlineData("imul rcx, rdx, 1000", "4869cae8030000")]
        [InlineData("imul edx", "f7ea")]
        [InlineData("imul eax, 5", "6bc005")]
        [InlineData("div qword ptr [rsp + 8]", "48f7742408")]
        [InlineData("idiv ecx", "f7f9")]
        [InlineData("shl rax, 1", "48d1e0")]
        [InlineData("shl eax, 4", "c1e004")]
        [InlineData("shr rdx, cl", "48d3ea")]
        [InlineData("sar dword ptr [rax], 3", "c13803")]
        [InlineData("rol al, 1", "d0c0")]
        [InlineData("ror r8, 7", "49c1c807")]
        [InlineData("sal ecx, 2", "c1e102")]
        [InlineData("bt eax, 3", "0fbae003")]
        [InlineData("bts qword ptr [rdi], rax", "480fab07")]
        [InlineData("btr ecx, edx", "0fb3d1")]
        [InlineData("btc rax, 63", "480fbaf83f")]
        [InlineData("bsf rax, rcx", "480fbcc1")]
        [InlineData("bsr edx, [rdi]", "0fbd17")]
        [InlineData("bswap eax", "0fc8")]
        [InlineData("bswap r9", "490fc9")]
        [InlineData("xchg rax, rbx", "4893")]
        [InlineData("xchg eax, ecx", "91")]
        [InlineData("xchg eax, eax", "87c0")]
        [InlineData("xchg [rdi], rsi", "488737")]
        [InlineData("cmpxchg [rdi], rcx", "480fb10f")]
        [InlineData("xadd dword ptr [rsi], eax", "0fc106")]
        [InlineData("lock cmpxchg qword ptr [rdx], r8", "f04c0fb102")]
        [InlineData("lock add dword ptr [rax], 1", "f0830001")]
        [InlineData("lock xadd [rbx], eax", "f00fc103")]
        [InlineData("push rbp", "55")]
        [InlineData("push r12", "4154")]
        [InlineData("push 0x10", "6a10")]
        [InlineData("push 1000", "68e8030000")]
        [InlineData("push qword ptr [rax]", "ff30")]
        [InlineData("pop rbx", "5b")]
        [InlineData("pop r15", "415f")]
        [InlineData("pop qword ptr [rsp + 8]", "8f442408")]
        [InlineData("push fs", "0fa0")]
        [InlineData("pop gs", "0fa9")]
        [InlineData("call rax", "ffd0")]
        [InlineData("call qword ptr [rbx + 8]", "ff5308")]
        [InlineData("jmp rax", "ffe0")]
        [InlineData("ret", "c3")]
        [InlineData("ret 16", "c21000")]
        [InlineData("leave", "c9")]
        [InlineData("nop", "90")]
        [InlineData("int3", "cc")]
        [InlineData("int 0x80", "cd80")]
        [InlineData("syscall", "0f05")]
        [InlineData("cdq", "99")]
        [InlineData("cqo", "4899")]
        [InlineData("cdqe", "4898")]
        [InlineData("cwde", "98")]
        [InlineData("hlt", "f4")]
        [InlineData("pause", "f390")]
        [InlineData("cpuid", "0fa2")]
        [InlineData("rdtsc", "0f31")]
        [InlineData("ud2", "0f0b")]
        [InlineData("mfence", "0faef0")]
        [InlineData("lfence", "0faee8")]
        [InlineData("sfence", "0faef8")]
        [InlineData("clc", "f8")]
        [InlineData("stc", "f9")]
        [InlineData("cld", "fc")]
        [InlineData("std", "fd")]
        [InlineData("pushfq", "9c")]
        [InlineData("popfq", "9d")]
        [InlineData("sete al", "0f94c0")]
        [InlineData("setne cl", "0f95c1")]
        [InlineData("setz dl", "0f94c2")]
        [InlineData("setnbe r8b", "410f97c0")]
        [InlineData("setg byte ptr [rax]", "0f9f00")]
        [InlineData("cmovz rax, rbx", "480f44c3")]
        [InlineData("cmovnz ecx, edx", "0f45ca")]
        [InlineData("cmovb rax, [rdi]", "480f4207")]
        [InlineData("cmovge r9, r10", "4d0f4dca")]
        [InlineData("cmovle eax, ecx", "0f4ec1")]
        [InlineData("enter 32, 0", "c8200000")]
        [InlineData("movsb", "a4")]
        [InlineData("movsq", "48a5")]
        [InlineData("rep movsb", "f3a4")]
        [InlineData("rep stosq", "f348ab")]
        [InlineData("repe cmpsb", "f3a6")]
        [InlineData("repne scasb", "f2ae")]
        [InlineData("lodsd", "ad")]
        [InlineData("stosb", "aa")]
        [InlineData("movd xmm0, eax", "660f6ec0")]
        [InlineData("movq xmm1, rax", "66480f6ec8")]
        [InlineData("movdqa xmm0, xmmword ptr [rax]", "660f6f00")]
        [InlineData("movups xmmword ptr [rdi], xmm2", "0f1117")]
        [InlineData("addps xmm0, xmm1", "0f58c1")]
        [InlineData("pxor xmm3, xmm3", "660fefdb")]
        [InlineData("movsd xmm0, qword ptr [rax]", "f20f1000")]
        [InlineData("movsd xmm1, xmm2", "f20f10ca")]
        [InlineData("cvtsi2sd xmm0, rax", "f2480f2ac0")]
        [InlineData("pshufd xmm0, xmm1, 0x1b", "660f70c11b")]
        [InlineData("vaddps ymm0, ymm1, ymm2", "c5f458c2")]
        [InlineData("vmovdqu ymm0, ymmword ptr [rsi]", "c5fe6f06")]
        [InlineData("andn eax, ebx, ecx", "c4e260f2c1")]
        [InlineData("nop dword ptr [rax + rax]", "0f1f0400")]
        [InlineData("in al, dx", "ec")]
        [InlineData("out dx, eax", "ef")]
        [InlineData("in al, 0x60", "e460")]
        [InlineData("mov ax, ds", "668cd8")]
        [InlineData("bt qword ptr [rax], 5", "480fba2005")]
        [InlineData("xchg ax, bx", "6693")]
        [InlineData("shld eax, ebx, 4", "0fa4d804")]
        [InlineData("shrd rax, rdx, cl", "480fadd0")]
        [InlineData("popcnt rax, rcx", "f3480fb8c1")]
        [InlineData("lzcnt eax, ecx", "f30fbdc1")]
        [InlineData("tzcnt rax, [rdi]", "f3480fbc07")]
        [InlineData("movbe eax, [rdi]", "0f38f007")]
        [InlineData("crc32 eax, byte ptr [rdi]", "f20f38f007")]
        [InlineData("prefetcht0 [rax]", "0f1808")]
        [InlineData("clflush [rdi]", "0fae3f")]
        [InlineData("fld qword ptr [rax]", "dd00")]
        [InlineData("fstp dword ptr [rbx]", "d91b")]
        [InlineData("mov ax, 0x1234", "66b83412")]
        [InlineData("mov r8, 0x80000000", "49b80000008000000000")]
        [InlineData("mov r8, -0x80000000", "49c7c000000080")]
        [InlineData("push -1", "6aff")]
        [InlineData("mov byte ptr [rbx + rax - 0x80], -128", "c644038080")]
        [InlineData("mov rax, [r13]", "498b4500")]
        [InlineData("mov rax, [rsp]", "488b0424")]
        [InlineData("mov rax, [r12 + 0x7f]", "498b44247f")]
        [InlineData("lea rax, [rbp]", "488d4500")]
        [InlineData("mov dword ptr [rbp - 0x100], eax", "898500ffffff")]
        [InlineData("mov qword ptr [rsp + 0x10], -2", "48c7442410feffffff")]
        [InlineData("add r10w, 0x7fff", "664181c2ff7f")]
        [InlineData("sub byte ptr [r14], 1", "41802e01")]
        [InlineData("movabs rax, 0x1122334455667788", "48b88877665544332211")]
        [InlineData("cmp word ptr [rax + rcx*2], 0xffff", "66833c48ff")]
        [InlineData("mov r11b, 0xff", "41b3ff")]
        [InlineData("mov sil, -1", "40b6ff")]
        public void KnownEncodings64(string line, string expectedHex)
        {
            Assert.Equal(expectedHex, Hex(EncodeBlock(Assemble(line).Instructions, 0x1000)));
        }

        // Expected bytes come from GNU as (`.intel_syntax noprefix`, --32).
        [Theory]
        [InlineData("mov eax, ebx", "89d8")]
        [InlineData("mov eax, [0x1000]", "a100100000")]
        [InlineData("mov [0x2000], al", "a200200000")]
        [InlineData("mov eax, [ebx + ecx*4 + 8]", "8b448b08")]
        [InlineData("mov ax, 5", "66b80500")]
        [InlineData("push 5", "6a05")]
        [InlineData("push 0x1000", "6800100000")]
        [InlineData("push ebp", "55")]
        [InlineData("pop edi", "5f")]
        [InlineData("push dword ptr [eax]", "ff30")]
        [InlineData("call eax", "ffd0")]
        [InlineData("call dword ptr [eax]", "ff10")]
        [InlineData("jmp dword ptr [ebx*4 + 0x400000]", "ff249d00004000")]
        [InlineData("inc eax", "40")]
        [InlineData("dec ecx", "49")]
        [InlineData("ret", "c3")]
        [InlineData("leave", "c9")]
        [InlineData("pushfd", "9c")]
        [InlineData("popfd", "9d")]
        [InlineData("pushf", "9c")]
        [InlineData("movsd", "a5")]
        [InlineData("rep stosd", "f3ab")]
        [InlineData("cmpsd", "a7")]
        [InlineData("lea esi, [esi + 0]", "8d36")]
        [InlineData("int 0x80", "cd80")]
        [InlineData("pusha", "60")]
        [InlineData("add eax, 0xFFFFFFFF", "83c0ff")]
        [InlineData("mov eax, fs:[0]", "64a100000000")]
        [InlineData("xchg eax, ecx", "91")]
        [InlineData("cdq", "99")]
        public void KnownEncodings32(string line, string expectedHex)
        {
            Assert.Equal(expectedHex, Hex(EncodeBlock(Assemble(line, 32).Instructions, 0x1000, 32)));
        }

        [Fact]
        public void Patch_with_labels_resume_and_far_call_encodes_as_one_block_with_the_relocated_originals()
        {
            const string code = @"
    test rdi, rdi
    jz skip                          ; forward label
    cmp dword ptr [rdi + 8], 0x10
    jbe resume                       # the relocated original instructions
    lock inc qword ptr [rip + counter]
    call libc.so.6!getpid            ; beyond rel32 reach of the cave
again:
    dec ecx
    jnz again                        ; backward label
skip:
    xor eax, eax
";
            var program = Assemble(code);
            var originals = Decode(new byte[] { 0x55, 0x48, 0x89, 0xe5 }, Site, 2); // push rbp; mov rbp, rsp
            var jumpBack = Instruction.CreateBranch(Code.Jmp_rel32_64, Site + 4);

            var bytes = EncodeBlock(program.Instructions.Concat(originals).Append(jumpBack), Cave);

            Assert.Equal(string.Join("\n",
                "555555560000 test rdi, rdi",
                "555555560003 je 0x55555556001d",
                "555555560005 cmp dword ptr [rdi + 8], 0x10",
                "555555560009 jbe 0x55555556001f",
                "55555556000b lock inc qword ptr [0x555555559000]",
                "555555560013 call qword ptr [0x555555560028]",
                "555555560019 dec ecx",
                "55555556001b jne 0x555555560019",
                "55555556001d xor eax, eax",
                "55555556001f push rbp",
                "555555560020 mov rbp, rsp",
                "555555560023 jmp 0x555555551004"), Listing(bytes, Cave, 12));
            // The far call goes through a slot the BlockEncoder appended, holding the absolute target.
            Assert.Equal(FarFunction, BitConverter.ToUInt64(bytes, 0x28));
        }

        [Fact]
        public void Labels_get_unique_synthetic_addresses_and_branches_target_them()
        {
            var program = Assemble("top: nop\n  jmp middle\nmiddle:\n\n  jmp top\n  jmp resume\n  jmp end\nend:");

            var ips = program.Instructions.Select(i => i.IP).ToList();
            Assert.Equal(ips.Count, ips.Distinct().Count());
            Assert.All(ips, ip => Assert.True(ip >= 0xF000_0000_0000_0000UL, ip.ToString("x")));
            Assert.Equal(ips[2], program.Instructions[1].NearBranch64);
            Assert.Equal(ips[0], program.Instructions[2].NearBranch64);
            Assert.Equal(Site, program.Instructions[3].NearBranch64);
            Assert.Equal(Site, program.Instructions[4].NearBranch64); // a label after the last instruction is `resume`
        }

        [Fact]
        public void Branch_to_a_number_is_an_absolute_target()
        {
            var program = Assemble("call 0x5555_5555_3000\njmp 0x555555554000\nja 0x555555555000");

            var bytes = EncodeBlock(program.Instructions, Cave);

            Assert.Equal(string.Join("\n",
                "555555560000 call 0x555555553000",
                "555555560005 jmp 0x555555554000",
                "55555556000a ja 0x555555555000"), Listing(bytes, Cave, 3));
        }

        [Fact]
        public void Rip_relative_operands_reach_symbols_and_labelled_data()
        {
            const string code = @"
    mov rax, [rip + counter]
    mov ecx, dword ptr [counter + 4]   ; [symbol] is RIP-relative in 64-bit code
    lea rdx, [rip + value]
    add rax, qword ptr [value]
    mov rsi, qword ptr gs:[rip + parse_record - 0x10]
    jmp resume
value:
    dq 0x1122334455667788
";
            var original = Instruction.Create(Code.Nopd);
            original.IP = Site;

            var bytes = EncodeBlock(Assemble(code).Instructions.Append(original), Cave);

            Assert.Equal(string.Join("\n",
                "555555560000 mov rax, [0x555555559000]",
                "555555560007 mov ecx, [0x555555559004]",
                "55555556000d lea rdx, [0x555555560025]",
                "555555560014 add rax, [0x555555560025]",
                "55555556001b mov rsi, gs:[0x555555551ff0]",
                "555555560023 jmp 0x55555556002d"), Listing(bytes, Cave, 6));
            Assert.Equal(0x1122334455667788UL, BitConverter.ToUInt64(bytes, 0x25));
        }

        [Fact]
        public void Module_qualified_and_unusual_symbol_names_are_resolved_by_their_full_text()
        {
            var asked = new List<string>();
            var small = new Dictionary<string, ulong> { ["small.so!table"] = 0x1000 };
            ulong? Recording(string name)
            {
                asked.Add(name);
                return small.TryGetValue(name, out var a) ? a : Resolve(name);
            }
            const string code = @"
    call libc.so.6!getpid
    call kernel32.dll!GetCurrentProcessId
    call ld-linux-x86-64.so.2!_dl_debug_state
    call libstdc++.so.6!_ZdlPv
    call _Z3fooi
    lea rax, [rip+foo.bar]
    mov eax, [rbx+small.so!table]
    mov rax, parse_record + 8
";
            var program = IntelAssembler.Assemble(code, 64, Site, Recording);

            Assert.Equal(new[]
            {
                "libc.so.6!getpid", "kernel32.dll!GetCurrentProcessId", "ld-linux-x86-64.so.2!_dl_debug_state",
                "libstdc++.so.6!_ZdlPv", "_Z3fooi", "foo.bar", "small.so!table", "parse_record",
            }, asked);
            Assert.Equal(FarFunction, program.Instructions[0].NearBranch64);
            Assert.Equal(0x5555_5555_c000UL, program.Instructions[3].NearBranch64);
            Assert.Equal(Register.RIP, program.Instructions[5].MemoryBase);
            Assert.Equal(0x5555_5555_9100UL, program.Instructions[5].MemoryDisplacement64);
            Assert.Equal(Register.RBX, program.Instructions[6].MemoryBase);
            Assert.Equal(0x1000UL, program.Instructions[6].MemoryDisplacement64);
            Assert.Equal(0x5555_5555_2008UL, program.Instructions[7].GetImmediate(1));
        }

        [Fact]
        public void Data_directives_emit_little_endian_data_split_across_instructions()
        {
            var program = Assemble("db 1, 0xff, -1, 'A'\ndw 0x1234, -2\ndd 0xdeadbeef\ndq parse_record\n"
                + "db " + string.Join(", ", Enumerable.Range(0, 40)));

            Assert.Equal(4 + 3, program.Instructions.Count);
            Assert.Equal(program.Instructions.Count, program.Instructions.Select(i => i.IP).Distinct().Count());
            var bytes = EncodeBlock(program.Instructions, Cave);
            Assert.Equal("01ffff41" + "3412feff" + "efbeadde" + "0020555555550000"
                + Hex(Enumerable.Range(0, 40).Select(i => (byte)i)), Hex(bytes));
        }

        [Fact]
        public void String_instructions_without_operands_use_the_string_forms()
        {
            var program = Assemble("rep movsb\nmovsd\nmovsd xmm0, xmm1\nrepne scasb\nrep stosq\nrepe cmpsw\nlodsq");

            Assert.Equal(new[] { Code.Movsb_m8_m8, Code.Movsd_m32_m32, Code.Movsd_xmm_xmmm64, Code.Scasb_AL_m8,
                Code.Stosq_m64_RAX, Code.Cmpsw_m16_m16, Code.Lodsq_RAX_m64 }, program.Instructions.Select(i => i.Code));
            Assert.Equal("f3a4" + "a5" + "f20f10c1" + "f2ae" + "f348ab" + "66f3a7" + "48ad",
                Hex(EncodeBlock(program.Instructions, Cave)));
        }

        [Fact]
        public void Mnemonics_and_registers_ignore_case_symbols_and_labels_do_not()
        {
            var program = Assemble("Loop1: MOV RAX, QWORD PTR [RBX + R8*1]\n  JNZ Loop1\n  Call parse_record");
            Assert.Equal(3, program.Instructions.Count);

            Assert.Contains("unknown register or symbol 'Parse_Record'", Fails("call Parse_Record").Message);
            Assert.Contains("unknown register or symbol 'loop1'", Fails("Loop1: nop\njmp loop1").Message);
        }

        [Fact]
        public void Comments_blank_lines_and_label_only_lines_are_skipped()
        {
            var program = Assemble("; header comment\n\n   # another\nstart:\n\r\n  nop ; trailing\r\n  int3 # also trailing\n  jmp start");

            Assert.Equal(new[] { Code.Nopd, Code.Int3, Code.Jmp_rel32_64 }, program.Instructions.Select(i => i.Code));
            Assert.Equal(program.Instructions[0].IP, program.Instructions[2].NearBranch64);
        }

        [Fact]
        public void Thirty_two_bit_code_branches_to_labels_and_resume()
        {
            const ulong site32 = 0x0804_8000, cave32 = 0x0805_0000;
            var program = IntelAssembler.Assemble("top:\n  dec ecx\n  jnz top\n  cmp eax, 3\n  jb resume\n  mov eax, [ebx + 4]", 32, site32, Resolve);
            var originals = Decode(new byte[] { 0x55, 0x89, 0xe5 }, site32, 2, 32);
            var jumpBack = Instruction.CreateBranch(Code.Jmp_rel32_32, site32 + 3);

            var bytes = EncodeBlock(program.Instructions.Concat(originals).Append(jumpBack), cave32, 32);

            Assert.Equal(string.Join("\n",
                "8050000 dec ecx",
                "8050001 jne 0x8050000",
                "8050003 cmp eax, 3",
                "8050006 jb 0x805000b",
                "8050008 mov eax, [ebx + 4]",
                "805000b push ebp",
                "805000c mov ebp, esp",
                "805000e jmp 0x8048003"), Listing(bytes, cave32, 8, 32));
        }

        [Theory]
        [InlineData("movv rax, rbx", 0, 0, "unknown mnemonic 'movv'")]
        [InlineData("nop\n  mov rxx, 5", 1, 6, "unknown register or symbol 'rxx'")]
        [InlineData("mov al, 300", 0, 8, "immediate 300 does not fit in 8 bits")]
        [InlineData("and rax, 0xFFFFFFFF", 0, 9, "immediate 0xFFFFFFFF does not fit in 32 bits")]
        [InlineData("ret 0x10000", 0, 4, "immediate 0x10000 does not fit in 16 bits")]
        [InlineData("inc [rax]", 0, 4, "operand size is ambiguous; write byte/word/dword/qword ptr")]
        [InlineData("movzx eax, [rsi]", 0, 11, "operand size is ambiguous")]
        [InlineData("push [rax]", 0, 5, "operand size is ambiguous")]
        [InlineData("mov [rax], 1", 0, 4, "operand size is ambiguous")]
        [InlineData("a:\n  nop\n  a: nop", 2, 2, "duplicate label 'a' (first defined on line 10)")]
        [InlineData("resume: nop", 0, 0, "'resume' is a reserved label")]
        [InlineData("rax: nop", 0, 0, "'rax' is a register and can't be a label")]
        [InlineData("jne nowhere", 0, 4, "unknown register or symbol 'nowhere'")]
        [InlineData("call libc.so.7!getpid", 0, 5, "unknown register or symbol 'libc.so.7!getpid'")]
        [InlineData("mov rax, [rbx + 8", 0, 9, "'[' without a matching ']'")]
        [InlineData("mov rax, rbx + 8]", 0, 16, "']' without a matching '['")]
        [InlineData("mov rax, [rbx] + 8", 0, 15, "unexpected '+' after ']'")]
        [InlineData("add rax, cl", 0, 0, "no form of 'add' takes (r64, r8)")]
        [InlineData("mov eax, byte ptr [rsi]", 0, 0, "no form of 'mov' takes (r32, m8)")]
        [InlineData("mov rax, [rip + 8]", 0, 10, "[rip + number] would be relative to the relocated patch code")]
        [InlineData("mov rax, [rax*3]", 0, 14, "scale must be 1, 2, 4 or 8")]
        [InlineData("mov rax, [rax + rbx + rcx]", 0, 22, "too many registers in a memory operand")]
        [InlineData("mov rax, [rbx + 0x80000000]", 0, 10, "does not fit in 32 bits")]
        [InlineData("lock mov rax, rbx", 0, 0, "'lock' needs an instruction that can be locked")]
        [InlineData("rep add eax, 1", 0, 0, "'rep' can't be used with 'add'")]
        [InlineData("repne movsb", 0, 0, "'repne' can't be used with 'movsb'")]
        [InlineData("mov rax, done\ndone: nop", 0, 9, "label 'done' can only be a branch target")]
        [InlineData("mov eax, [rbx + done]\ndone: nop", 0, 16, "labels can't be memory operands")]
        [InlineData("jmp done + 2\ndone: nop", 0, 4, "a label can't take an offset")]
        [InlineData("mov ah, sil", 0, 0, "can't encode 'mov ah, sil'")]
        [InlineData("mov rax, [eax + rbx]", 0, 16, "address registers must all be 32-bit or all 64-bit")]
        [InlineData("mov eax, 1 +", 0, 11, "expected a value after '+'")]
        [InlineData("mov eax, 'ab'", 0, 9, "character literal")]
        [InlineData("mov eax, 0x1g", 0, 9, "invalid number '0x1g'")]
        [InlineData("mov eax, 99999999999999999999", 0, 9, "larger than 64 bits")]
        [InlineData("mov eax, %", 0, 9, "unexpected character '%'")]
        [InlineData("mov rax,", 0, 8, "missing operand")]
        [InlineData("lock", 0, 0, "expected an instruction after 'lock'")]
        [InlineData("pusha", 0, 0, "'pusha' is not valid in 64-bit code")]
        [InlineData("db 256", 0, 3, "value 256 does not fit in 8 bits")]
        [InlineData("jmp -5", 0, 4, "branch target -5 is not a 64-bit address")]
        [InlineData("mov rax, dword ptr rbx", 0, 9, "'dword' applies to memory operands")]
        public void Errors_NameTheFilePositionAndTheProblem(string code, int lineIndex, int columnIndex, string message)
        {
            var error = Fails(code, source: new AsmSourceInfo { FirstLine = 10, FirstColumn = 7 });

            Assert.Equal(HotpatchErrorKind.AssemblyError, error.Kind);
            Assert.Equal(10 + lineIndex, error.Line);
            Assert.Equal(7 + columnIndex, error.Column);
            Assert.Contains(message, error.Detail);
            Assert.StartsWith("line " + error.Line + ", column " + error.Column + ": ", error.Message);
        }

        [Fact]
        public void Errors_without_source_info_count_from_line_one_column_one()
        {
            var error = Fails("nop\nnop\n\tmovv eax, 1");

            Assert.Equal(3, error.Line);
            Assert.Equal(2, error.Column);
        }

        [Fact]
        public void Thirty_two_bit_code_rejects_label_range_targets_and_sixty_four_bit_registers()
        {
            Assert.Contains("reserves for labels", Fails("jmp 0xF0000000", 32).Detail);
            Assert.Contains("'rax' needs 64-bit code", Fails("mov eax, [rax]", 32).Detail);
            Assert.Contains("'movsq' is not valid in 32-bit code", Fails("movsq", 32).Detail);
        }

        private const string Specials = "[]+-*:,x0\n;'";

        [Fact]
        [Trait("Category", Fuzz.Category)]
        public async Task Arbitrary_input_only_ever_fails_with_asm_exception()
        {
            string[] pool =
            {
                "mov", "add", "jmp", "call", "lea", "push", "imul", "shl", "db", "dq", "movsd", "rep", "lock", "xchg",
                "enter", "ret", "int", "nop", "in", "out", "cmpxchg", "movzx", "test", "jz", "loop", "x:", "resume",
                "rax", "eax", "ax", "al", "ah", "r8b", "sil", "cs", "fs", "xmm0", "ymm1", "st0", "cr0", "rip",
                "[", "]", "+", "-", "*", ":", ",", ",", "8", "3", "0x", "0xffffffffffffffff", "-1", "300", "0x80000000",
                "byte", "ptr", "qword", "xmmword", "counter", "x", "libc.so.6!getpid", "'a'", "''", ";", "#", "!", "$",
                ".", "\t", "fs:[0x28]", "[rip+counter]", "[rbx+rcx*8-8]", "dword ptr", "movsb", "movsq", "enter",
            };
            // Valid programs, then mutated byte by byte: near-misses reach deeper into the operand parser than random tokens.
            string[] valid =
            {
                "mov eax, [rip+counter]\nadd eax, 1\nmov [rip+counter], eax\njmp resume\ncounter: dd 0",
                "cmp edi, 0x100\njbe ok\nmov eax, -22\nret\nok: jmp resume",
                "push rbx\nlea rbx, [rdi+rsi*4-8]\ncall libc.so.6!getpid\npop rbx\nrep movsb\nlock cmpxchg [rbx], ecx",
                "movsd xmm0, qword ptr [rsp+8]\nimul r8d, dword ptr fs:[0x28], 12\nloop x\nx: db 'ab', 0x90\ndq 0xffffffffffffffff",
            };
            var random = new Random(Fuzz.Seed(1234));
            int cases = Fuzz.Cases(5000), assembled = 0, refused = 0;
            await Fuzz.Run(cases, n =>
            {
                string code;
                if (n % 2 == 0)
                {
                    var parts = Enumerable.Range(0, random.Next(1, 9)).Select(_ => pool[random.Next(pool.Length)]);
                    code = string.Join(random.Next(3) == 0 ? "" : " ", parts);
                }
                else
                {
                    var chars = valid[random.Next(valid.Length)].ToCharArray().ToList();
                    for (int e = 1 + random.Next(3); e > 0 && chars.Count > 0; e--)
                    {
                        int at = random.Next(chars.Count);
                        switch (random.Next(4))
                        {
                            case 0: chars[at] = (char)random.Next(32, 127); break;
                            case 1: chars.RemoveAt(at); break;
                            case 2: chars.Insert(at, Specials[random.Next(Specials.Length)]); break;
                            default: chars.InsertRange(at, pool[random.Next(pool.Length)]); break;
                        }
                    }
                    code = new string(chars.ToArray());
                }
                try
                {
                    IntelAssembler.Assemble(code, random.Next(2) == 0 ? 64 : 32, Site, Resolve);
                    assembled++;
                }
                catch (AsmException)
                {
                    refused++;
                }
                catch (Exception e)
                {
                    Assert.Fail("case " + n + ": " + e + "\ninput:\n" + code);
                }
            });
            Assert.True(assembled > 0 && refused > 0, $"assembled {assembled}, refused {refused}");
        }
    }
}
