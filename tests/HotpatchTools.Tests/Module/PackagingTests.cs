using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// The module as the Package target lays it out, copied into a folder on PSModulePath and imported by name.
    /// </summary>
    public sealed class PackagingTests : IClassFixture<PackagingTests.PackagedModule>
    {
        private readonly PackagedModule _package;

        public PackagingTests(PackagedModule package) { _package = package; }

        /// <summary>$(Version) of Directory.Build.props: the one version number of the build.</summary>
        private static string MsBuildVersion =>
            XDocument.Load(Path.Combine(ModuleShell.RepoRoot, "Directory.Build.props")).Descendants("Version").Single().Value;

        private static string ManifestVersion(string psd1) =>
            Regex.Match(File.ReadAllText(psd1), @"\bModuleVersion\s*=\s*'([^']*)'").Groups[1].Value;

        private static string BuildOutput => Path.Combine(ModuleShell.RepoRoot, "src", "HotpatchTools", "bin", "Release", "netstandard2.0");

        private static string[] RelativeFiles(string folder) =>
            Directory.Exists(folder)
                ? Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(folder, f).Replace('\\', '/')).OrderBy(f => f, StringComparer.Ordinal).ToArray()
                : new string[0];

        [Fact]
        public void Package_holds_manifest_loader_views_the_module_and_its_dependencies_in_their_own_folder()
        {
            var files = RelativeFiles(_package.ModuleFolder);
            Assert.Contains("HotpatchTools.psd1", files);
            Assert.Contains("HotpatchTools.psm1", files);
            Assert.Contains("HotpatchTools.format.ps1xml", files);
            Assert.Equal(new[] { "RoleCapabilities/HotpatchAuditor.psrc", "RoleCapabilities/HotpatchOperator.psrc" }, files.Where(f => f.StartsWith("RoleCapabilities/")));
            // The only assembly outside bin/Dependencies is the module itself.
            Assert.Equal(new[] { "bin/HotpatchTools.dll" }, files.Where(f => f.EndsWith(".dll") && !f.StartsWith("bin/Dependencies/")));
            var dependencies = files.Where(f => f.StartsWith("bin/Dependencies/")).Select(Path.GetFileName).ToArray();
            foreach (var expected in new[] { "HotpatchTools.Engine.dll", "Iced.dll", "YamlDotNet.dll", "System.Reflection.Metadata.dll", "System.Security.Cryptography.Pkcs.dll", "System.Formats.Asn1.dll",
                                             "System.Collections.Immutable.dll", "System.Memory.dll", "System.Buffers.dll", "System.Runtime.CompilerServices.Unsafe.dll" })
                Assert.Contains(expected, dependencies);
            // Everything the build placed beside the module ships, except PowerShellStandard's reference assembly:
            // the host brings the real System.Management.Automation.
            var built = Directory.GetFiles(BuildOutput, "*.dll").Select(Path.GetFileName)
                .Where(f => f != "HotpatchTools.dll" && f != "System.Management.Automation.dll");
            Assert.Equal(built.OrderBy(f => f), dependencies.OrderBy(f => f));
        }

        [Fact]
        public void Packaged_manifest_is_stamped_with_the_msbuild_version_and_otherwise_unchanged()
        {
            var packaged = Path.Combine(_package.ModuleFolder, "HotpatchTools.psd1");
            Assert.Equal(MsBuildVersion, Path.GetFileName(_package.ModuleFolder));
            Assert.Equal(MsBuildVersion, ManifestVersion(packaged));
            var repoLines = File.ReadAllLines(ModuleShell.ManifestPath);
            var packagedLines = File.ReadAllLines(packaged);
            Assert.Equal(repoLines.Length, packagedLines.Length);
            Assert.Equal(repoLines.Where(l => !l.TrimStart().StartsWith("ModuleVersion")), packagedLines.Where(l => !l.TrimStart().StartsWith("ModuleVersion")));
        }

        [Fact]
        public void Repository_manifest_version_agrees_with_Directory_Build_props()
        {
            Assert.Equal(MsBuildVersion, ManifestVersion(ModuleShell.ManifestPath));
        }

        [Fact]
        public void Package_carries_the_cmdlet_help_of_the_build_output_beside_the_module_assembly()
        {
            Assert.Equal(RelativeFiles(Path.Combine(BuildOutput, "en-US")), RelativeFiles(Path.Combine(_package.ModuleFolder, "bin", "en-US")));
        }

        /// <summary>
        /// Runs in a PowerShell process of its own: this test process already has HotpatchTools.Engine loaded from
        /// its output folder (it references the engine), and other tests import the module from the source build.
        /// </summary>
        [Fact]
        public void Imported_by_name_from_PSModulePath_the_module_loads_its_engine_from_bin_Dependencies_in_its_own_context()
        {
            var patch = PatchFiles.WriteFile(_package.Root, "HP-PKG-1", PatchFiles.Yaml("HP-PKG-1", "hpt-package-test.so",
                new[] { new PatchletSpec("f", new byte[] { 0x90, 0x90, 0x90, 0x90, 0x90 }) }));
            // $args[0] is the repository manifest (PowerShellProcess passes it); this script imports the package by name instead.
            const string script = @"
$env:PSModulePath = $args[1] + [System.IO.Path]::PathSeparator + $env:PSModulePath
foreach ($pass in 'first import', 'import after Remove-Module') {
    Import-Module HotpatchTools -ErrorAction Stop
    $module = Get-Module HotpatchTools
    'ModuleBase=' + $module.ModuleBase
    'Commands=' + ((Get-Command -Module HotpatchTools | ForEach-Object Name) -join ',')
    'FormatFiles=' + ($module.ExportedFormatFiles -join ',')
    # Reading the patch file takes the engine and its YamlDotNet.
    'State=' + (Get-HotpatchTarget -Path $args[2] -ProcessId $args[3]).State
    'Synopsis=' + (Get-Help Install-Micropatch).Synopsis
    # Signing and checking takes the CMS assemblies.
    $key = [System.Security.Cryptography.RSA]::Create(2048)
    $request = [System.Security.Cryptography.X509Certificates.CertificateRequest]::new('CN=Packaging Test', $key, [System.Security.Cryptography.HashAlgorithmName]::SHA256, [System.Security.Cryptography.RSASignaturePadding]::Pkcs1)
    $cert = $request.CreateSelfSigned([DateTimeOffset]::UtcNow.AddMinutes(-5), [DateTimeOffset]::UtcNow.AddDays(1))
    Set-MicropatchSignature -Path $args[2] -Certificate $cert -Force
    'Signature=' + (Get-MicropatchSignature -Path $args[2]).Status
    Remove-Module HotpatchTools
}
foreach ($a in [System.AppDomain]::CurrentDomain.GetAssemblies()) {
    if ($a.GetName().Name -in 'HotpatchTools', 'HotpatchTools.Engine', 'YamlDotNet', 'System.Security.Cryptography.Pkcs') {
        'Assembly=' + $a.GetName().Name + '|' + $a.Location + '|' + [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext($a).Name
    }
}";
            var (exit, lines, stderr) = PowerShellProcess.Run("", script, _package.ModulesPath, patch, Environment.ProcessId.ToString());
            Assert.True(exit == 0, "the script failed (" + exit + "):\n" + stderr + "\n" + string.Join("\n", lines));
            string[] Values(string key) => lines.Where(l => l.StartsWith(key + "=")).Select(l => l[(key.Length + 1)..]).ToArray();

            Assert.Equal(new[] { _package.ModuleFolder, _package.ModuleFolder }, Values("ModuleBase"));
            foreach (var commands in Values("Commands"))
                Assert.Equal(ModuleCommands.Exported,
                    commands.Split(',').OrderBy(c => c, StringComparer.Ordinal));
            Assert.All(Values("FormatFiles"), f => Assert.Equal(Path.Combine(_package.ModuleFolder, "HotpatchTools.format.ps1xml"), f));
            Assert.Equal(new[] { "NotLoaded", "NotLoaded" }, Values("State"));
            // Intact and verified, but signed by nobody this machine trusts.
            Assert.Equal(new[] { "UntrustedPublisher", "UntrustedPublisher" }, Values("Signature"));
            var help = Path.Combine(_package.ModuleFolder, "bin", "en-US", "HotpatchTools.dll-Help.xml");
            if (File.Exists(help)) // Get-Help finds the packaged help rather than falling back to the syntax
                Assert.All(Values("Synopsis"), s => Assert.Contains("<maml:para>" + s + "</maml:para>", File.ReadAllText(help)));

            // Each loaded once, the second import included: name, location, load context.
            var loaded = Values("Assembly").Select(a => a.Split('|')).ToArray();
            string[] Loaded(string name) => Assert.Single(loaded, a => a[0] == name);
            var dependencies = Path.Combine(_package.ModuleFolder, "bin", "Dependencies");
            Assert.Equal(Path.Combine(_package.ModuleFolder, "bin", "HotpatchTools.dll"), Loaded("HotpatchTools")[1]);
            Assert.Equal(new[] { "HotpatchTools.Engine", Path.Combine(dependencies, "HotpatchTools.Engine.dll"), "HotpatchTools" }, Loaded("HotpatchTools.Engine"));
            Assert.Equal(new[] { "YamlDotNet", Path.Combine(dependencies, "YamlDotNet.dll"), "HotpatchTools" }, Loaded("YamlDotNet"));
            // PowerShell 7 ships System.Security.Cryptography.Pkcs itself, and the host's copy wins, as for
            // System.Management.Automation; Windows PowerShell has no copy and takes ours from bin/Dependencies. Either way, once.
            Assert.EndsWith("System.Security.Cryptography.Pkcs.dll", Loaded("System.Security.Cryptography.Pkcs")[1]);
        }

        /// <summary>
        /// Builds the package once for the class into a temporary folder and installs it into a modules folder.
        /// </summary>
        public sealed class PackagedModule : IDisposable
        {
            public string Root { get; } = Directory.CreateTempSubdirectory("hpt-package-").FullName;
            public string ModulesPath => Path.Combine(Root, "Modules");
            public string ModuleFolder => Path.Combine(ModulesPath, "HotpatchTools", MsBuildVersion);

            public PackagedModule()
            {
                var output = Path.Combine(Root, "package");
                ChildProcess.Dotnet("build", Path.Combine(ModuleShell.RepoRoot, "src", "HotpatchTools"), "-c", "Release", "-t:Package", "-p:PackageOutput=" + output);
                CopyTree(Path.Combine(output, "HotpatchTools"), Path.Combine(ModulesPath, "HotpatchTools"));
            }

            public void Dispose() => Directory.Delete(Root, recursive: true);

            private static void CopyTree(string from, string to)
            {
                foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
                    Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
                Directory.CreateDirectory(to);
                foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
                    File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
            }
        }
    }
}
