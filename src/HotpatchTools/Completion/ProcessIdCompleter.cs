using System.Collections;
using System.Globalization;
using System.IO;
using System.Management.Automation.Language;
using System.Runtime.InteropServices;
using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Patching;
using HotpatchTools.Engine.Platform;

namespace HotpatchTools.Completion
{
    /// <summary>
    /// -ProcessId: running processes whose id or name starts with what was typed, each shown with its name. When
    /// the command already names a patch file (-Path), only the processes that load its module; kernel threads
    /// (nothing to patch there) never.
    /// </summary>
    public sealed class ProcessIdCompleter : IArgumentCompleter
    {
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            IEnumerable<ProcessInfo> processes;
            try
            {
                var platform = HotpatchEngine.CurrentPlatform();
                string? module = BoundPatchModule(fakeBoundParameters);
                processes = module != null && platform is IModuleProcessFilter filter
                    ? filter.ListProcessesWithModule(module, ignoreCase: RuntimeInformation.IsOSPlatform(OSPlatform.Windows), includeUnreadable: false)
                    : platform.ListProcesses().Where(p => !IsKernelThread(p.Id));
            }
            // An unsupported platform or an unreadable process list: nothing to offer, and completion must not fail.
            catch (Exception e) when (e is HotpatchException || e is IOException || e is UnauthorizedAccessException)
            {
                return Enumerable.Empty<CompletionResult>();
            }
            string typed = CompletionText.Unquote(wordToComplete);
            var results = new List<CompletionResult>();
            foreach (var p in processes)
            {
                string id = p.Id.ToString(CultureInfo.InvariantCulture);
                if (!id.StartsWith(typed, StringComparison.Ordinal) && !p.Name.StartsWith(typed, StringComparison.OrdinalIgnoreCase)) continue;
                // CompletionResult refuses an empty tooltip.
                string name = p.Name.Length > 0 ? p.Name : "?";
                results.Add(new CompletionResult(id, id + " (" + name + ")", CompletionResultType.ParameterValue, name));
            }
            return results;
        }

        /// <summary>The module of the one patch file -Path names, when it parses; else null (complete every process).</summary>
        private static string? BoundPatchModule(IDictionary? fakeBoundParameters)
        {
            if (fakeBoundParameters == null || !fakeBoundParameters.Contains("Path")) return null;
            try
            {
                var paths = LanguagePrimitives.ConvertTo<string[]>(fakeBoundParameters["Path"]);
                if (paths.Length != 1) return null;
                var folder = CompletionText.SessionDirectory();
                var path = folder == null ? paths[0] : Path.Combine(folder, paths[0]);
                return File.Exists(path) ? MicropatchParser.Load(path).Target.Module : null;
            }
            catch (Exception e) when (e is PSInvalidCastException || e is HotpatchException || e is IOException || e is UnauthorizedAccessException || e is ArgumentException) { return null; }
        }

        /// <summary>Linux kernel threads have an empty command line; they map no module to patch.</summary>
        internal static bool IsKernelThread(int pid)
        {
            if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) return false;
            try
            {
                using var f = new FileStream("/proc/" + pid.ToString(CultureInfo.InvariantCulture) + "/cmdline", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
                return f.ReadByte() < 0;
            }
            // Gone or hidden: nothing to offer either.
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException) { return true; }
        }
    }
}
