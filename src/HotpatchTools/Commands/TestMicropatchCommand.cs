using System.IO;
using HotpatchTools.Completion;
using HotpatchTools.Engine.Authoring;

namespace HotpatchTools.Commands
{
    /// <summary>
    /// Checks patch files against module files on disk, with no process: which builds does a patch fit? The engine
    /// plans and installs the patch in each file laid out as the loader maps it, so the answer is the install's.
    /// </summary>
    [Cmdlet(VerbsDiagnostic.Test, "Micropatch")]
    [OutputType(typeof(MicropatchTestResult))]
    public sealed class TestMicropatchCommand : HotpatchCommandBase
    {
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("FullName", "PSPath")]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(MicropatchPathCompleter))]
        public string[] Path { get; set; } = new string[0];

        /// <summary>Module files, or folders searched (with their subfolders) for the patch's module.</summary>
        [Parameter(Mandatory = true, Position = 1)]
        [ValidateNotNullOrEmpty]
        public string[] ModulePath { get; set; } = new string[0];

        private List<string>? _modules;
        private readonly HashSet<string> _named = new HashSet<string>();
        // No -ModulePath named anything: its errors said so, and "no file under X is the module" would blame the files.
        private bool _resolved;

        protected override void BeginProcessing()
        {
            _modules = new List<string>();
            foreach (var p in ResolvePaths(ModulePath, literal: false, foldersAllowed: true, notFoundId: "ModuleFileNotFound"))
            {
                _resolved = true;
                if (Directory.Exists(p))
                {
                    try { _modules.AddRange(OfflineCheck.ModuleFiles(p)); }
                    catch (HotpatchException e) { WriteFailure(e, p); }
                }
                else
                {
                    _modules.Add(p);
                    _named.Add(p);
                }
            }
        }

        protected override void ProcessRecord()
        {
            foreach (var file in ResolvePaths(Path, literal: false))
            {
                // Read-only: nothing is installed anywhere, so no signature is needed to look (authors test before signing).
                var patch = ReadPatch(file);
                if (patch == null) continue;
                int shown = 0;
                for (int i = 0; i < _modules!.Count; i++)
                {
                    Progress(1, "Test-Micropatch " + patch.Id, i, _modules.Count, _modules[i]);
                    OfflineCheckResult r;
                    try { r = OfflineCheck.Check(patch, _modules[i]); }
                    catch (HotpatchException e) { WriteFailure(e, _modules[i]); continue; }
                    catch (IOException e) { WriteError(new ErrorRecord(e, "ModuleUnreadable", ErrorCategory.ReadError, _modules[i])); continue; }
                    // A folder holds other modules too: those are not answers to "which builds does it fit?".
                    if (r.State == OfflineCheckState.NotApplicable && !_named.Contains(_modules[i]))
                    {
                        WriteVerbose(r.ModulePath + ": " + r.Reason);
                        continue;
                    }
                    shown++;
                    WriteObject(MicropatchTestResult.From(r, file));
                }
                CompleteProgress(1, "Test-Micropatch " + patch.Id);
                if (shown == 0 && _resolved)
                    WriteWarning("No file under " + string.Join(", ", ModulePath) + " is " + patch.Target.Module + " (" + _modules.Count + " module files looked at).");
            }
        }
    }
}
