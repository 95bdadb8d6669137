using System.Text;
using HotpatchTools.Engine.Format;

namespace HotpatchTools.Tests.Support
{
    public sealed record PatchletSpec(string At, byte[] Expect, string Code = "", string Mode = "insert");

    /// <summary>Writes micropatch files as a patch author would, for targets compiled by the tests.</summary>
    public static class PatchFiles
    {
        public static string Yaml(string id, string module, IEnumerable<PatchletSpec> patchlets, string? identity = null)
        {
            var sb = new StringBuilder();
            sb.Append("format: 1\nid: ").Append(id).Append("\ntitle: Test patch ").Append(id).Append('\n');
            sb.Append("target:\n  os: ").Append(TestPlatform.Os).Append("\n  arch: x64\n  module: ").Append(module).Append('\n');
            if (identity != null) sb.Append("  identity:\n    ").Append(identity).Append('\n');
            sb.Append("patchlets:\n");
            foreach (var p in patchlets)
            {
                sb.Append("  - at: ").Append(p.At).Append('\n');
                sb.Append("    expect: ").Append(Hex.Spaced(p.Expect)).Append('\n');
                sb.Append("    mode: ").Append(p.Mode).Append('\n');
                if (p.Code.Length > 0)
                {
                    sb.Append("    code: |\n");
                    foreach (var line in p.Code.Split('\n')) sb.Append("      ").Append(line).Append('\n');
                }
            }
            return sb.ToString();
        }

        /// <summary>A patchlet at symbol (+offset) of the live target, expecting the bytes it has there now.</summary>
        public static PatchletSpec At(TargetProcess t, string symbol, int expectLength, string code = "", string mode = "insert", int offset = 0) =>
            new PatchletSpec(offset == 0 ? symbol : symbol + "+0x" + offset.ToString("x"), t.Read(t.Symbol(symbol) + (ulong)offset, expectLength), code, mode);

        public static Micropatch Parse(string yaml, string name = "test.micropatch.yaml") =>
            MicropatchParser.Parse(Encoding.UTF8.GetBytes(yaml), name);

        public static Micropatch For(TargetProcess t, string id, params PatchletSpec[] patchlets) =>
            Parse(Yaml(id, t.ModuleName, patchlets));

        /// <summary>The tests' usual patch of triple() (tests/native/target.c): any argument above 100 answers -1.</summary>
        public const string GuardCode = "cmp edi, 100\njbe resume\nmov eax, -1\nret";

        /// <summary>
        /// Writes a one-patchlet file for the live target into dir, named by its id: by default the guard at triple(),
        /// expecting the bytes the target has there now.
        /// </summary>
        public static string Write(string dir, TargetProcess t, string id, string at = "triple", string code = GuardCode, byte[]? expect = null, int expectLength = 6) =>
            WriteFile(dir, id, Yaml(id, t.ModuleName, new[] { new PatchletSpec(at, expect ?? t.ReadSymbol(at, expectLength), code) }));

        public static string WriteFile(string dir, string id, string yaml)
        {
            Directory.CreateDirectory(dir);
            var path = Path.Combine(dir, id + ".micropatch.yaml");
            File.WriteAllText(path, yaml);
            return path;
        }
    }
}
