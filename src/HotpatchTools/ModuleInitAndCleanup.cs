using System.IO;
using System.Reflection;

namespace HotpatchTools
{
    /// <summary>
    /// Loads the engine and its third-party assemblies from the module's own folder, so that another module's
    /// YamlDotNet or System.Memory never replaces ours and ours never replaces theirs: bin/Dependencies in a
    /// packaged module, the folder of HotpatchTools.dll in a source build.
    /// </summary>
    public sealed class ModuleInitAndCleanup : IModuleAssemblyInitializer, IModuleAssemblyCleanup
    {
        private static readonly Assembly Self = typeof(ModuleInitAndCleanup).Assembly;
        private static readonly Dictionary<string, (string Path, Version? Version)> Dependencies = FindDependencies();
        private static readonly Func<string, Assembly> Loader = CreateLoader();
        private static readonly Dictionary<string, Assembly> Loaded = new Dictionary<string, Assembly>(StringComparer.OrdinalIgnoreCase);
        private static readonly object Gate = new object();
        private static int _imports;
        private static bool _registered;

        // Public types of this assembly name no engine type, so PowerShell can list them before OnImport runs.
        private static void RegisterResolver()
        {
            lock (Gate)
            {
                if (_registered) return;
                AppDomain.CurrentDomain.AssemblyResolve += Resolve;
                _registered = true;
            }
        }

        // The handler is process-wide but imports happen per runspace: it stays until the last import is removed.
        public void OnImport()
        {
            lock (Gate)
            {
                _imports++;
                RegisterResolver();
            }
        }

        public void OnRemove(PSModuleInfo psModuleInfo)
        {
            lock (Gate)
            {
                if (_imports == 0 || --_imports > 0) return;
                AppDomain.CurrentDomain.AssemblyResolve -= Resolve;
                _registered = false;
            }
        }

        private static Dictionary<string, (string Path, Version? Version)> FindDependencies()
        {
            var moduleFolder = Path.GetDirectoryName(Self.Location)!;
            var packaged = Path.Combine(moduleFolder, "Dependencies");
            var folder = Directory.Exists(packaged) ? packaged : moduleFolder;
            var found = new Dictionary<string, (string Path, Version? Version)>(StringComparer.OrdinalIgnoreCase);
            foreach (var file in Directory.EnumerateFiles(folder, "*.dll"))
            {
                var name = AssemblyName.GetAssemblyName(file);
                // A source build also holds the module itself and PowerShellStandard's reference assembly; the host's
                // own System.Management.Automation must always win.
                if (name.Name == Self.GetName().Name || name.Name == typeof(PSObject).Assembly.GetName().Name) continue;
                found[name.Name!] = (file, name.Version);
            }
            return found;
        }

        /// <summary>
        /// On .NET (PowerShell 7) a load context of our own keeps our versions apart from every other module's;
        /// on .NET Framework (Windows PowerShell) the LoadFrom context, keyed by path, already does.
        /// </summary>
        private static Func<string, Assembly> CreateLoader()
        {
            // netstandard2.0 cannot name AssemblyLoadContext, so it is reached through reflection when present.
            var contextType = typeof(object).Assembly.GetType("System.Runtime.Loader.AssemblyLoadContext");
            if (contextType == null) return Assembly.LoadFrom;
            var context = Activator.CreateInstance(contextType, "HotpatchTools", false);
            var loadFromPath = contextType.GetMethod("LoadFromAssemblyPath", new[] { typeof(string) })!;
            return path => (Assembly)loadFromPath.Invoke(context, new object[] { path });
        }

        private static Assembly? Resolve(object? sender, ResolveEventArgs args)
        {
            var wanted = new AssemblyName(args.Name);
            if (wanted.Name == null || !Dependencies.TryGetValue(wanted.Name, out var shipped)) return null;
            // Another module asking for an assembly that happens to share a name with one of ours gets no answer from us.
            var requester = args.RequestingAssembly;
            if (requester != null && requester != Self && !Dependencies.ContainsKey(requester.GetName().Name!)) return null;
            // A newer or equal version answers an older request, as a binding redirect would (System.Memory asks
            // for an older System.Runtime.CompilerServices.Unsafe than the one that ships with it).
            if (wanted.Version != null && shipped.Version != null && shipped.Version < wanted.Version) return null;
            // The runtime asks again from each load context that needs it, and our context refuses a second load of one path.
            lock (Gate)
            {
                if (!Loaded.TryGetValue(wanted.Name, out var assembly))
                    Loaded[wanted.Name] = assembly = Loader(shipped.Path);
                return assembly;
            }
        }
    }
}
