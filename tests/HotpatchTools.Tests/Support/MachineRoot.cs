using System;
using System.IO;
using HotpatchTools.Engine.Machine;
using Xunit;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// Points every machine-wide path (catalog, trust, log) at a temp folder for the tests that need them. The
    /// override is an environment variable, so it is process-wide: every class that uses it belongs to this one
    /// collection, which runs alone (no other class sees the override, and the watch delays measured in it are
    /// not those of a machine busy with the rest of the suite). The real /var/lib and ProgramData are never written.
    /// </summary>
    public sealed class MachineRoot : IDisposable
    {
        public MachineRoot()
        {
            Path = Directory.CreateTempSubdirectory("hpt-machine-").FullName;
            Environment.SetEnvironmentVariable(MachinePaths.OverrideVariable, Path);
        }

        public string Path { get; }

        /// <summary>An empty catalog for the next test.</summary>
        public void Reset()
        {
            Assert.Equal(Path, Environment.GetEnvironmentVariable(MachinePaths.OverrideVariable));
            Assert.StartsWith(Path, MachinePaths.CatalogDirectory);
            if (Directory.Exists(MachinePaths.CatalogDirectory)) Directory.Delete(MachinePaths.CatalogDirectory, recursive: true);
        }

        public void Dispose()
        {
            Environment.SetEnvironmentVariable(MachinePaths.OverrideVariable, null);
            Directory.Delete(Path, recursive: true);
        }
    }

    [CollectionDefinition(Name, DisableParallelization = true)]
    public sealed class MachineStateCollection : ICollectionFixture<MachineRoot>
    {
        public const string Name = "Machine state";
    }
}
