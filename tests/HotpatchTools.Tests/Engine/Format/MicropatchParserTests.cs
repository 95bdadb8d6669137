using System.Security.Cryptography;
using System.Text;
using System.Threading.Tasks;
using HotpatchTools.Engine.Format;

namespace HotpatchTools.Tests
{
    public class MicropatchParserTests
    {
        // The spec's example, with its elided hex values written out in full.
        private const string SpecExample =
@"format: 1                      # required; any other value is refused
id: HP-2026-0001               # required; ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$
title: Reject oversized length in parse_record   # required
description: |                 # optional, free text
  parse_record trusts the length byte of the record header ...
references: [CVE-2026-12345]   # optional list of strings
severity: high                 # optional: low | medium | high | critical
target:                        # required
  os: linux                    # required: windows | linux
  arch: x64                    # required: x64 | x86
  module: libvuln.so           # required: file name of the loaded module (main
                               #   executable or library); case-insensitive on windows
  identity:                    # optional; every field given must match, else the
    buildId: 9F0C11223344556677889900AABBCCDDEEFF0011
    timeDateStamp: 0x5F3A2B1C  #   PE: IMAGE_FILE_HEADER.TimeDateStamp
    sizeOfImage: 0x2A000       #   PE: IMAGE_OPTIONAL_HEADER.SizeOfImage
    sha256: 4b2e000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d
patchlets:                     # required, at least one; installed all-or-nothing
  - at: parse_record           # symbol, symbol+0xOFF, or 0xRVA (offset from the
                               #   module's load base; RVA for PE)
    expect: 8b 47 08 48 63 d0  # required: hex bytes that must be at `at` now
                               #   (here: mov eax,[rdi+8]; movsxd rdx,eax)
    mode: insert               # insert (default) | replace
    code: |                    # Intel-syntax x86 assembly, one instruction a line
      cmp esi, 64
      jbe resume               # built-in label: run the displaced original
      mov eax, -1              #   instructions, then continue after them
      ret
";

        // Line numbers in the error tests below refer to this text.
        private const string Minimal =
@"format: 1
id: HP-TEST-1
title: Test patch
target:
  os: linux
  arch: x64
  module: libvuln.so
patchlets:
  - at: parse_record
    expect: 8b 47 08 48 63 d0
    code: |
      cmp esi, 64
      jbe resume
";

        private const string PatchletsBlock = "patchlets:\n  - at: parse_record\n    expect: 8b 47 08 48 63 d0\n    code: |\n      cmp esi, 64\n      jbe resume\n";

        private static Micropatch Parse(string yaml) => MicropatchParser.Parse(Encoding.UTF8.GetBytes(yaml), "test.micropatch.yaml");

        private static MicropatchFormatException Fails(string yaml) =>
            Assert.Throws<MicropatchFormatException>(() => Parse(yaml));

        private static string Edit(string find, string replace)
        {
            Assert.Contains(find, Minimal);
            return Minimal.Replace(find, replace);
        }

        [Fact]
        public void Spec_example_parses_to_the_model()
        {
            var bytes = Encoding.UTF8.GetBytes(SpecExample);
            var patch = MicropatchParser.Parse(bytes, "HP-2026-0001.micropatch.yaml");

            Assert.Equal(1, patch.Format);
            Assert.Equal("HP-2026-0001", patch.Id);
            Assert.Equal("Reject oversized length in parse_record", patch.Title);
            Assert.Equal("parse_record trusts the length byte of the record header ...\n", patch.Description);
            Assert.Equal(new[] { "CVE-2026-12345" }, patch.References);
            Assert.Equal(Severity.High, patch.Severity);

            Assert.Equal(TargetOs.Linux, patch.Target.Os);
            Assert.Equal(TargetArch.X64, patch.Target.Arch);
            Assert.Equal("libvuln.so", patch.Target.Module);
            Assert.Equal("9f0c11223344556677889900aabbccddeeff0011", patch.Target.Identity.BuildId);
            Assert.Equal(0x5F3A2B1Cu, patch.Target.Identity.TimeDateStamp);
            Assert.Equal(0x2A000u, patch.Target.Identity.SizeOfImage);
            Assert.Equal("4b2e000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d", patch.Target.Identity.Sha256);
            Assert.False(patch.Target.Identity.IsEmpty);

            var p = Assert.Single(patch.Patchlets);
            Assert.Equal(0, p.Index);
            Assert.Equal("parse_record", p.At);
            Assert.Equal("parse_record", p.Location.Symbol);
            Assert.Equal(0ul, p.Location.Offset);
            Assert.Equal(new byte[] { 0x8b, 0x47, 0x08, 0x48, 0x63, 0xd0 }, p.Expect);
            Assert.Equal(PatchMode.Insert, p.Mode);
            Assert.Equal(
                "cmp esi, 64\njbe resume               # built-in label: run the displaced original\n" +
                "mov eax, -1              #   instructions, then continue after them\nret\n", p.Code);
            Assert.Equal(19, p.Line);
            Assert.Equal(25, p.CodeLine);
            Assert.Equal(7, p.CodeColumn);
            Assert.Equal("patchlets[0] (at parse_record)", p.Name);

            var hash = SHA256.HashData(bytes);
            Assert.Equal(hash, patch.FileSha256Bytes);
            Assert.Equal(Convert.ToHexString(hash).ToLowerInvariant(), patch.FileSha256);
            Assert.Equal("HP-2026-0001.micropatch.yaml", patch.SourceName);
        }

        [Fact]
        public void Optional_keys_have_their_defaults()
        {
            var patch = Parse(Minimal.Replace("    code: |\n      cmp esi, 64\n      jbe resume\n", ""));
            Assert.Null(patch.Description);
            Assert.Empty(patch.References);
            Assert.Null(patch.Severity);
            Assert.True(patch.Target.Identity.IsEmpty);
            var p = Assert.Single(patch.Patchlets);
            Assert.Equal(PatchMode.Insert, p.Mode);
            Assert.Equal("", p.Code);
        }

        [Theory]
        [InlineData("    code: |\n      \n    \n")]          // the first blank line deeper than the next: YamlDotNet refused it
        [InlineData("    code: |\n\n      \n")]
        [InlineData("    code: |-   # nothing yet\n        \n")]
        [InlineData("    code: |\r\n      \r\n")]
        public void A_literal_block_of_only_blank_lines_is_empty_code(string block)
        {
            var patch = Parse(Minimal.Replace("    code: |\n      cmp esi, 64\n      jbe resume\n", block));
            Assert.Equal("", Assert.Single(patch.Patchlets).Code);
        }

        [Fact]
        public void A_literal_block_with_code_after_blank_lines_keeps_it()
        {
            var patch = Parse(Minimal.Replace("    code: |\n      cmp esi, 64\n", "    code: |\n\n      cmp esi, 64\n"));
            Assert.Contains("cmp esi, 64", Assert.Single(patch.Patchlets).Code);
        }

        [Fact]
        public void Load_reads_the_file_and_names_it_by_full_path()
        {
            var dir = Directory.CreateTempSubdirectory("micropatch-").FullName;
            try
            {
                var path = Path.Combine(dir, "HP-2026-0001.micropatch.yaml");
                File.WriteAllText(path, SpecExample);
                var relative = Path.GetRelativePath(Environment.CurrentDirectory, path);
                var patch = MicropatchParser.Load(relative);
                Assert.Equal(path, patch.SourceName);
                Assert.Equal(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))).ToLowerInvariant(), patch.FileSha256);

                File.WriteAllText(path, Minimal.Replace("format: 1", "format: 2"));
                var e = Assert.Throws<MicropatchFormatException>(() => MicropatchParser.Load(path));
                Assert.Equal(path, e.Source);
                Assert.StartsWith(path + ": line 1, column 9: format: ", e.Message);
            }
            finally
            {
                Directory.Delete(dir, true);
            }
        }

        [Fact]
        public void Load_of_a_missing_file_names_the_file()
        {
            var path = Path.Combine(Path.GetTempPath(), "no-such-dir-" + Guid.NewGuid().ToString("n"), "x.micropatch.yaml");
            var e = Assert.Throws<HotpatchException>(() => MicropatchParser.Load(path));
            Assert.Equal(HotpatchErrorKind.InvalidPatchFile, e.Kind);
            Assert.Equal(path + ": file not found", e.Message);
        }

        [Fact]
        public void Load_of_a_directory_is_an_invalid_patch_file()
        {
            var e = Assert.Throws<HotpatchException>(() => MicropatchParser.Load(Path.GetTempPath()));
            Assert.Equal(HotpatchErrorKind.InvalidPatchFile, e.Kind);
            Assert.StartsWith(Path.GetTempPath() + ": ", e.Message);
        }

        [Fact]
        public void Utf8_bom_is_accepted_and_hashed_as_part_of_the_file()
        {
            var bytes = new byte[] { 0xEF, 0xBB, 0xBF }.Concat(Encoding.UTF8.GetBytes(Minimal)).ToArray();
            var patch = MicropatchParser.Parse(bytes, "bom.micropatch.yaml");
            Assert.Equal(1, patch.Format);
            Assert.Equal("HP-TEST-1", patch.Id);
            Assert.Equal(9, patch.Patchlets[0].Line);
            Assert.Equal(SHA256.HashData(bytes), patch.FileSha256Bytes);
        }

        [Theory]
        [InlineData("parse_record", "parse_record", 0ul)]
        [InlineData("parse_record+0x1c", "parse_record", 0x1cul)]
        [InlineData("parse_record+28", "parse_record", 28ul)]
        [InlineData("_ZN3foo3barEv+0X10", "_ZN3foo3barEv", 0x10ul)]
        [InlineData("'?Parse@Record@@QEAAHXZ'", "?Parse@Record@@QEAAHXZ", 0ul)]
        [InlineData("__libc_start_main.cold", "__libc_start_main.cold", 0ul)]
        [InlineData("$x+0", "$x", 0ul)]
        [InlineData("0x1234", null, 0x1234ul)]
        [InlineData("4660", null, 4660ul)]
        [InlineData("0xffffffff", null, 0xfffffffful)]
        [InlineData("parse_record+0xffffffff", "parse_record", 0xfffffffful)]
        public void AtForms(string at, string? symbol, ulong offset)
        {
            var p = Parse(Edit("at: parse_record", "at: " + at)).Patchlets[0];
            Assert.Equal(symbol, p.Location.Symbol);
            Assert.Equal(offset, p.Location.Offset);
            Assert.Equal(at.Trim('\''), p.At);
        }

        /// <summary>An offset past 32 bits can only wrap an address around (into the module, past its bounds check).</summary>
        [Theory]
        [InlineData("0x100000000")]
        [InlineData("0xffffffffffffffff")]
        [InlineData("parse_record+0xffffffffffffff00")]
        [InlineData("parse_record+18446744073709551615")]
        public void AtOffsetsPast32BitsAreRefused(string at)
        {
            var e = Fails(Edit("at: parse_record", "at: " + at));
            Assert.Equal("patchlets[0].at", e.Key);
            Assert.Contains("fit in 32 bits", e.Message);
        }

        /// <summary>What a cave header cannot record is refused before anything is planned (a longer span used to be cut to 16 bits).</summary>
        [Fact]
        public void Expect_and_patchlet_counts_are_bounded_by_what_a_cave_records()
        {
            var big = string.Concat(Enumerable.Repeat("90", MicropatchParser.MaxExpectBytes + 1));
            var e = Fails(Edit("expect: 8b 47 08 48 63 d0", "expect: " + big));
            Assert.Equal("patchlets[0].expect", e.Key);
            Assert.Contains("at most " + MicropatchParser.MaxExpectBytes + " bytes", e.Message);
            Assert.Equal(MicropatchParser.MaxExpectBytes, Parse(Edit("expect: 8b 47 08 48 63 d0", "expect: " + big.Substring(2))).Patchlets[0].Expect.Length);

            string Many(int n) => Minimal.Substring(0, Minimal.IndexOf("patchlets:", StringComparison.Ordinal)) + "patchlets:\n" +
                string.Concat(Enumerable.Range(0, n).Select(i => "  - at: 0x" + (0x1000 + 16 * i).ToString("x") + "\n    expect: 90 90 90 90 90\n"));
            Assert.Equal(MicropatchParser.MaxPatchlets, Parse(Many(MicropatchParser.MaxPatchlets)).Patchlets.Count);
            e = Fails(Many(MicropatchParser.MaxPatchlets + 1));
            Assert.Equal("patchlets", e.Key);
            Assert.Contains("at most " + MicropatchParser.MaxPatchlets, e.Message);

            e = Fails(Edit("module: libvuln.so", "module: " + new string('l', 256)));
            Assert.Equal("target.module", e.Key);
        }

        [Theory]
        [InlineData("8b4708", new byte[] { 0x8b, 0x47, 0x08 })]
        [InlineData("\"8B 47 08\"", new byte[] { 0x8b, 0x47, 0x08 })]
        [InlineData("'8b47 08'", new byte[] { 0x8b, 0x47, 0x08 })]
        [InlineData("90", new byte[] { 0x90 })]
        [InlineData("0102", new byte[] { 0x01, 0x02 })]
        public void ExpectForms(string expect, byte[] bytes)
        {
            Assert.Equal(bytes, Parse(Edit("expect: 8b 47 08 48 63 d0", "expect: " + expect)).Patchlets[0].Expect);
        }

        [Fact]
        public void Identity_hex_is_stored_lowercase_without_spaces_and_numbers_may_be_decimal()
        {
            var sha = string.Join(" ", Enumerable.Range(0, 32).Select(i => (i * 7).ToString("X2")));
            var patch = Parse(Edit("  module: libvuln.so\n",
                "  module: libvuln.so\n  identity:\n    buildId: AB CD EF 01\n    sha256: " + sha + "\n" +
                "    timeDateStamp: 1597123356\n    sizeOfImage: 0xFFFFFFFF\n"));
            Assert.Equal("abcdef01", patch.Target.Identity.BuildId);
            Assert.Equal(sha.Replace(" ", "").ToLowerInvariant(), patch.Target.Identity.Sha256);
            Assert.Equal(1597123356u, patch.Target.Identity.TimeDateStamp);
            Assert.Equal(0xFFFFFFFFu, patch.Target.Identity.SizeOfImage);
        }

        [Fact]
        public void Format_may_be_hex()
        {
            Assert.Equal(1, Parse(Edit("format: 1", "format: 0x1")).Format);
        }

        [Fact]
        public void Several_patchlets_keep_their_order_lines_and_modes()
        {
            var patch = Parse(Minimal +
@"  - at: 0x4f0
    expect: 90 90 90 90 90
    mode: replace
    code: ""xor eax, eax""
  - {at: other+8, expect: c3, code: ret}
");
            Assert.Equal(3, patch.Patchlets.Count);
            var p1 = patch.Patchlets[1];
            Assert.Equal(1, p1.Index);
            Assert.Equal(14, p1.Line);
            Assert.Equal(PatchMode.Replace, p1.Mode);
            Assert.Equal("xor eax, eax", p1.Code);
            Assert.Equal(17, p1.CodeLine);
            Assert.Equal(12, p1.CodeColumn);
            var p2 = patch.Patchlets[2];
            Assert.Equal(18, p2.Line);
            Assert.Equal("other", p2.Location.Symbol);
            Assert.Equal(8ul, p2.Location.Offset);
            Assert.Equal("ret", p2.Code);
            Assert.Equal(18, p2.CodeLine);
            Assert.Equal(37, p2.CodeColumn);
            Assert.Equal("patchlets[2] (at other+8)", p2.Name);
        }

        [Fact]
        public void Code_block_position_follows_its_indentation()
        {
            var p = Parse(Edit("    code: |\n      cmp esi, 64\n      jbe resume\n",
                "    code: |-   # trailing comment\n\n         cmp esi, 64\n         jbe resume\n")).Patchlets[0];
            Assert.Equal("\ncmp esi, 64\njbe resume", p.Code);
            Assert.Equal(12, p.CodeLine);
            Assert.Equal(10, p.CodeColumn);

            // An explicit indentation indicator counts from the patchlet mapping's indentation (4).
            p = Parse(Edit("    code: |\n      cmp esi, 64\n      jbe resume\n",
                "    code: |2\n        cmp esi, 64\n      jbe resume\n")).Patchlets[0];
            Assert.Equal("  cmp esi, 64\njbe resume\n", p.Code);
            Assert.Equal(12, p.CodeLine);
            Assert.Equal(7, p.CodeColumn);
        }

        [Fact]
        public void Function_is_a_symbol_or_a_start_end_range()
        {
            var symbol = Parse(Edit("    expect: 8b 47 08 48 63 d0\n", "    expect: 8b 47 08 48 63 d0\n    function: parse_record\n")).Patchlets[0].Function!;
            Assert.Equal(("parse_record", (SiteLocation?)null), (symbol.Symbol, symbol.Start));
            var range = Parse(Edit("    expect: 8b 47 08 48 63 d0\n", "    expect: 8b 47 08 48 63 d0\n    function: { start: parse_record, end: 0x1240 }\n")).Patchlets[0].Function!;
            Assert.Null(range.Symbol);
            Assert.Equal(("parse_record", 0UL, (string?)null, 0x1240UL), (range.Start!.Symbol, range.Start.Offset, range.End!.Symbol, range.End.Offset));
            Assert.Null(Parse(Minimal).Patchlets[0].Function);
        }

        [Theory]
        [InlineData("    function: { start: 0x10 }\n", "patchlets[0].function.end")]
        [InlineData("    function: { start: 0x10, end: 0x20, size: 16 }\n", "patchlets[0].function.size")]
        [InlineData("    function: parse_record+0x4\n", "patchlets[0].function")]
        [InlineData("    function: 0x1200\n", "patchlets[0].function")]
        [InlineData("    function: [parse_record]\n", "patchlets[0].function")]
        [InlineData("    function: { start: libc.so.6!getpid, end: 0x20 }\n", "patchlets[0].function.start")]
        public void FunctionErrorsNameTheKey(string line, string key)
        {
            var e = Fails(Edit("    expect: 8b 47 08 48 63 d0\n", "    expect: 8b 47 08 48 63 d0\n" + line));
            Assert.Equal(key, e.Key);
        }

        [Fact]
        public void Cr_lf_line_endings_give_the_same_model()
        {
            var patch = Parse(Minimal.Replace("\n", "\r\n"));
            var p = patch.Patchlets[0];
            Assert.Equal("cmp esi, 64\njbe resume\n", p.Code);
            Assert.Equal(12, p.CodeLine);
            Assert.Equal(7, p.CodeColumn);
        }

        /// <summary>
        /// Malformed-file cases: replacing find with replace in <see cref="Minimal"/> must fail naming key at line:column.
        /// Replacements that must fail at the same place are written as one row with their list.
        /// </summary>
        public sealed class ErrorCases : TheoryData<string, string, string, int, int>
        {
            public void Add(string find, string[] replacements, string key, int line, int column)
            {
                foreach (var replace in replacements) Add(find, replace, key, line, column);
            }
        }

        public static ErrorCases Errors => new ErrorCases
        {
            // Unknown keys: at the key.
            { "id: HP-TEST-1\n", "id: HP-TEST-1\ncolour: red\n", "colour", 3, 1 },
            { "  arch: x64\n", "  arch: x64\n  flavour: debian\n", "target.flavour", 7, 3 },
            { "    expect: 8b 47 08 48 63 d0\n", "    expect: 8b 47 08 48 63 d0\n    bytes: 90\n", "patchlets[0].bytes", 11, 5 },
            { "  module: libvuln.so\n", "  module: libvuln.so\n  identity:\n    buildid: 00\n", "target.identity.buildid", 9, 5 },
            { "    expect: 8b 47 08 48 63 d0\n", "    expect: 8b 47 08 48 63 d0\n    Mode: insert\n", "patchlets[0].Mode", 11, 5 },

            // Wrong types: at the value.
            { "title: Test patch", new[] { "title: {text: Test}", "title: ~" }, "title", 3, 8 },
            { "target:\n  os: linux\n  arch: x64\n  module: libvuln.so\n", "target: linux\n", "target", 4, 9 },
            { "  os: linux", "  os: [linux]", "target.os", 5, 7 },
            { "format: 1", new[] { "format: one", "format: 1.0", "format: \"1\"", "format: -1" }, "format", 1, 9 },
            { "id: HP-TEST-1", "id: [HP, TEST]", "id", 2, 5 },
            { "id: HP-TEST-1", "id:", "id", 2, 4 },
            { "title: Test patch", "title: Test patch\nreferences: CVE-2026-1", "references", 4, 13 },
            { "title: Test patch", "title: Test patch\nreferences: [CVE-2026-1, [x]]", "references[1]", 4, 26 },
            { "title: Test patch", "title: Test patch\ndescription: [a]", "description", 4, 14 },
            { PatchletsBlock, "patchlets: parse_record\n", "patchlets", 8, 12 },
            { "  - at: parse_record\n", "  - at: [parse_record]\n", "patchlets[0].at", 9, 9 },
            { "    expect: 8b 47 08 48 63 d0", "    expect: [8b, 47]", "patchlets[0].expect", 10, 13 },
            { "    expect: 8b 47 08 48 63 d0", "    expect: 8b 47 08 48 63 d0\n    mode: sideways", "patchlets[0].mode", 11, 11 },
            { "    code: |\n      cmp esi, 64\n      jbe resume\n", "    code:\n      - nop\n", "patchlets[0].code", 12, 7 },
            { "  module: libvuln.so\n", "  module: libvuln.so\n  identity:\n    timeDateStamp: 0x100000000\n", "target.identity.timeDateStamp", 9, 20 },
            { "  module: libvuln.so\n", "  module: libvuln.so\n  identity: 00ff\n", "target.identity", 8, 13 },

            // Missing required keys: at the mapping that lacks them.
            { "id: HP-TEST-1\n", "", "id", 1, 1 },
            { "format: 1\n", "", "format", 1, 1 },
            { "title: Test patch\n", "", "title", 1, 1 },
            { "  module: libvuln.so\n", "", "target.module", 5, 3 },
            { "    expect: 8b 47 08 48 63 d0\n", "", "patchlets[0].expect", 9, 5 },
            { "target:\n  os: linux\n  arch: x64\n  module: libvuln.so\n", "", "target", 1, 1 },

            // Duplicate keys: at the second occurrence.
            { "title: Test patch\n", "title: Test patch\nid: HP-TEST-2\n", "id", 4, 1 },
            { "    expect: 8b 47 08 48 63 d0\n", "    expect: 8b 47 08 48 63 d0\n    at: other\n", "patchlets[0].at", 11, 5 },
            { "  arch: x64\n", "  arch: x64\n  arch: x86\n", "target.arch", 7, 3 },

            // Invalid values: at the value.
            { "id: HP-TEST-1", new[] { "id: -HP-TEST-1", "id: HP TEST 1", "id: " + new string('a', 65), "id: HP/TEST" }, "id", 2, 5 },
            { "format: 1", "format: 2", "format", 1, 9 },
            { "title: Test patch", "title: '  '", "title", 3, 8 },
            { "title: Test patch", new[] { "title: Test patch\nseverity: urgent", "title: Test patch\nseverity: High" }, "severity", 4, 11 },
            { "  os: linux", "  os: macos", "target.os", 5, 7 },
            { "  arch: x64", "  arch: arm64", "target.arch", 6, 9 },
            { "  module: libvuln.so", new[] { "  module: ''", "  module: /usr/lib/libvuln.so" }, "target.module", 7, 11 },
            {
                "  module: libvuln.so\n",
                new[]
                {
                    "  module: libvuln.so\n  identity:\n    buildId: 9f0c zz\n",
                    "  module: libvuln.so\n  identity:\n    buildId: 9f0c1\n",
                    "  module: libvuln.so\n  identity:\n    buildId: ''\n",
                },
                "target.identity.buildId", 9, 14
            },
            {
                "  module: libvuln.so\n",
                new[]
                {
                    "  module: libvuln.so\n  identity:\n    sha256: " + new string('a', 62) + "\n",
                    "  module: libvuln.so\n  identity:\n    sha256: 0x" + new string('a', 64) + "\n",
                },
                "target.identity.sha256", 9, 13
            },
            { PatchletsBlock, "patchlets: []\n", "patchlets", 8, 12 },
            { "    expect: 8b 47 08 48 63 d0", new[] { "    expect: 8 b47 08", "    expect: 8b 47 0g", "    expect: \"\"" }, "patchlets[0].expect", 10, 13 },
            {
                "  - at: parse_record",
                new[]
                {
                    "  - at: libvuln.so!parse_record", "  - at: parse_record+", "  - at: parse_record+0x1g", "  - at: parse_record+-4",
                    "  - at: 0x12g", "  - at: 1parse", "  - at: 0x10000000000000000", "  - at: \"parse_record + 4\"", "  - at: +4",
                },
                "patchlets[0].at", 9, 9
            },

            // Problems with the document as a whole.
            { Minimal, new[] { "", "# nothing but a comment\n", "---\n...\n", "- format: 1\n", "just text\n" }, "(document)", 1, 1 },
            { "  module: libvuln.so\n", "  module: libvuln.so\n---\nformat: 1\n", "(document)", 8, 1 },
            { "title: Test patch", "title: \"Test patch", "(document)", 4, 1 },
            { "  arch: x64", "\tarch: x64", "(document)", 6, 1 },
            { "    expect: 8b", "   expect: 8b", "(document)", 10, 4 },
            { "title: Test patch", "title: \"a\\qb\"", "(document)", 3, 8 },
            { "title: Test patch", "title: [Test patch", "(document)", 4, 1 },
            { "  os: linux\n", "  os: linux\n   arch: x64\n", "(document)", 6, 8 },

            // Anchors, aliases and tags are refused where they appear.
            { "  os: linux", "  os: &os linux", "target.os", 5, 7 },
            { "title: Test patch", "title: Test patch\ndescription: *t", "description", 4, 14 },
            { "format: 1", "format: !!int 1", "format", 1, 9 },
        };

        [Theory]
        [MemberData(nameof(Errors))]
        public void Errors_name_the_key_and_position(string find, string replace, string key, int line, int column)
        {
            var yaml = Edit(find, replace);
            var e = Fails(yaml);
            Assert.True(key == e.Key && line == e.Line && column == e.Column,
                $"expected {key} at {line}:{column}, got {e.Key} at {e.Line}:{e.Column}: {e.Message}");
            Assert.Equal("test.micropatch.yaml", e.Source);
            Assert.Equal(HotpatchErrorKind.InvalidPatchFile, e.Kind);
            Assert.StartsWith($"test.micropatch.yaml: line {line}, column {column}: {key}: ", e.Message);
        }

        [Fact]
        public void Syntax_error_spanning_lines_names_where_the_construct_began()
        {
            var e = Fails(Edit("title: Test patch", "title: 'Test patch"));
            Assert.Equal(14, e.Line);
            Assert.Contains("begins at line 3, column 8", e.Message);
        }

        [Fact]
        public void Non_mapping_key_is_refused()
        {
            var e = Fails(Edit("  arch: x64\n", "  arch: x64\n  ? [a, b]\n  : c\n"));
            Assert.Equal("target", e.Key);
            Assert.Equal(7, e.Line);
        }

        [Fact]
        public void Deep_nesting_is_refused_without_overflowing_the_stack()
        {
            var e = Fails("format: " + new string('[', 200000) + new string(']', 200000) + "\n");
            Assert.Equal(1, e.Line);
            Assert.Contains("too deep", e.Message);
        }

        [Fact]
        public void Invalid_utf8_is_refused_at_its_position()
        {
            var bytes = Encoding.UTF8.GetBytes(Minimal.Replace("Test patch", "Test p\u00e4tch"));
            int at = Array.IndexOf(bytes, (byte)0xC3);
            bytes[at + 1] = (byte)'x';
            var e = Assert.Throws<MicropatchFormatException>(() => MicropatchParser.Parse(bytes, "utf8"));
            Assert.Equal(3, e.Line);
            Assert.Equal(14, e.Column);
            Assert.Equal("(document)", e.Key);
        }

        [Fact]
        public void Oversized_file_is_refused()
        {
            var bytes = Encoding.UTF8.GetBytes(Minimal + "description: " + new string('x', 2 << 20) + "\n");
            var e = Assert.Throws<MicropatchFormatException>(() => MicropatchParser.Parse(bytes, "big"));
            Assert.Equal("(document)", e.Key);
        }

        [Fact]
        public void No_partial_result_after_an_error_in_a_later_patchlet()
        {
            var e = Fails(Minimal + "  - at: other\n    expect: zz\n");
            Assert.Equal("patchlets[1].expect", e.Key);
            Assert.Equal(15, e.Line);
        }

        [Fact]
        [Trait("Category", Fuzz.Category)]
        public async Task Random_mutations_give_a_patch_or_a_format_error()
        {
            var original = Encoding.UTF8.GetBytes(SpecExample + "  - at: 0x1000\n    expect: 'c3'\n    mode: replace\n    code: \"ret\"\n");
            var specials = Encoding.ASCII.GetBytes(":-[]{}\"'|>&*!#%@`,?\t \n\r\\~0x");
            var rng = new Random(Fuzz.Seed(20260101));
            int cases = Fuzz.Cases(2000);
            var (parsed, refused) = await Fuzz.ParseOrRefuse<MicropatchFormatException>(cases,
                _ => Mutate(original, rng, specials),
                (_, bytes) => MicropatchParser.Parse(bytes, "fuzz"),
                (_, bytes) => "input:\n" + Encoding.UTF8.GetString(bytes),
                e => Assert.True(e.Line >= 1 && e.Column >= 1, e.Message));
            Assert.True(parsed > 0 && refused > 0, $"parsed {parsed}, refused {refused}");
        }

        private static byte[] Mutate(byte[] original, Random rng, byte[] specials)
        {
            var bytes = original.ToList();
            int edits = 1 + rng.Next(3);
            for (int e = 0; e < edits && bytes.Count > 0; e++)
            {
                int at = rng.Next(bytes.Count);
                switch (rng.Next(6))
                {
                    case 0:
                        bytes[at] ^= (byte)(1 << rng.Next(8));
                        break;
                    case 1:
                        bytes[at] = (byte)rng.Next(256);
                        break;
                    case 2:
                        bytes.RemoveRange(at, bytes.Count - at);
                        break;
                    case 3:
                    {
                        int start = bytes.LastIndexOf((byte)'\n', at) + 1;
                        int end = bytes.IndexOf((byte)'\n', at);
                        bytes.RemoveRange(start, (end < 0 ? bytes.Count : end + 1) - start);
                        break;
                    }
                    case 4:
                        bytes.Insert(at, specials[rng.Next(specials.Length)]);
                        break;
                    default:
                    {
                        int start = bytes.LastIndexOf((byte)'\n', at) + 1;
                        int end = bytes.IndexOf((byte)'\n', at);
                        var line = bytes.GetRange(start, (end < 0 ? bytes.Count : end + 1) - start);
                        bytes.InsertRange(rng.Next(bytes.Count + 1), line);
                        break;
                    }
                }
            }
            return bytes.ToArray();
        }
    }
}
