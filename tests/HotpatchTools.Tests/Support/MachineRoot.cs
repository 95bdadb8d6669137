using System.Runtime.CompilerServices;
using HotpatchTools.Engine.Machine;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// Every test of this process keeps the machine-wide files (trust store, audit log, catalog) in a temporary
    /// folder: the module's cmdlets would otherwise write /var/lib/hotpatchtools and /var/log/hotpatchtools.
    /// Set before any test runs, so the module, the engine and child processes started by tests all see it.
    /// </summary>
    public static class MachineRoot
    {
        public static string Path { get; private set; } = "";

        [ModuleInitializer]
        internal static void Redirect()
        {
            var existing = Environment.GetEnvironmentVariable(MachinePaths.OverrideVariable);
            if (string.IsNullOrEmpty(existing))
            {
                existing = Directory.CreateTempSubdirectory("hpt-machine-").FullName;
                Environment.SetEnvironmentVariable(MachinePaths.OverrideVariable, existing);
                // The audit tests write tens of megabytes; a folder this run made goes with it.
                var created = existing;
                AppDomain.CurrentDomain.ProcessExit += (_, _) =>
                {
                    try { Directory.Delete(created, recursive: true); }
                    catch (Exception e) when (e is IOException || e is UnauthorizedAccessException) { }
                };
            }
            Path = System.IO.Path.GetFullPath(existing);
        }
    }

    /// <summary>
    /// The fixture of the tests that use the machine catalog. The override itself is process-wide (see
    /// <see cref="MachineRoot"/>); these classes share one collection that runs alone, so no other class sees a
    /// catalog change halfway, and the watch delays measured in it are not those of a machine busy with the rest
    /// of the suite.
    /// </summary>
    public sealed class MachineState
    {
        public string Path => MachineRoot.Path;

        /// <summary>An empty catalog for the next test.</summary>
        public void Reset()
        {
            Assert.Equal(Path, System.IO.Path.GetFullPath(Environment.GetEnvironmentVariable(MachinePaths.OverrideVariable)!));
            Assert.StartsWith(Path, MachinePaths.CatalogDirectory);
            if (Directory.Exists(MachinePaths.CatalogDirectory)) Directory.Delete(MachinePaths.CatalogDirectory, recursive: true);
        }
    }

    [CollectionDefinition(Name, DisableParallelization = true)]
    public sealed class MachineStateCollection : ICollectionFixture<MachineState>
    {
        public const string Name = "Machine state";
    }

    /// <summary>
    /// A test class that drives the module against the machine catalog: a hosted runspace with the module imported
    /// and a temporary folder, each made for a test and gone after it, and the catalog emptied before the test.
    /// Derived classes join <see cref="MachineStateCollection"/>.
    /// </summary>
    public abstract class CatalogModuleTest : IDisposable
    {
        protected readonly ModuleShell _sh = new ModuleShell();
        protected readonly string _dir;
        protected readonly MachineState _root;

        /// <param name="folderName">Names the temporary folder (hpt-NAME-*), so a test that leaves one behind is known.</param>
        protected CatalogModuleTest(MachineState root, string folderName)
        {
            _dir = Directory.CreateTempSubdirectory("hpt-" + folderName + "-").FullName;
            _root = root;
            _root.Reset();
        }

        public void Dispose()
        {
            _sh.Dispose();
            Directory.Delete(_dir, recursive: true);
        }
    }
}
