using System.IO;
using System.Text;
using HotpatchTools.Completion;
using HotpatchTools.Engine.Authoring;
using HotpatchTools.Engine.Format;

namespace HotpatchTools.Commands
{
    /// <summary>
    /// Writes a new patch file for a site of a module: identity, expected bytes covering the whole instructions the
    /// jump overwrites, the code around the site as comments, and a code skeleton for the fix.
    /// </summary>
    [Cmdlet(VerbsCommon.New, "Micropatch", SupportsShouldProcess = true, DefaultParameterSetName = FileSet)]
    [OutputType(typeof(FileInfo))]
    public sealed class NewMicropatchCommand : HotpatchCommandBase
    {
        private const string FileSet = "ModulePath";
        private const string ProcessSet = "Process";

        [Parameter(Mandatory = true, Position = 0)]
        [ValidateNotNullOrEmpty]
        public string Id { get; set; } = "";

        /// <summary>The module file the patch is for.</summary>
        [Parameter(Mandatory = true, ParameterSetName = FileSet, ValueFromPipelineByPropertyName = true)]
        [Alias("FullName")]
        [ValidateNotNullOrEmpty]
        public string ModulePath { get; set; } = "";

        /// <summary>A process that has the module loaded; the patch is drafted from the module's file.</summary>
        [Parameter(Mandatory = true, ParameterSetName = ProcessSet, ValueFromPipelineByPropertyName = true)]
        [ValidateRange(1, int.MaxValue)]
        [ArgumentCompleter(typeof(ProcessIdCompleter))]
        public int ProcessId { get; set; }

        [Parameter(Mandatory = true, ParameterSetName = ProcessSet, ValueFromPipelineByPropertyName = true)]
        [Alias("Name")]
        [ValidateNotNullOrEmpty]
        public string Module { get; set; } = "";

        /// <summary>symbol, symbol+0xOFF or 0xRVA: where the jump to the fix goes.</summary>
        [Parameter(Mandatory = true)]
        [ValidateNotNullOrEmpty]
        public string At { get; set; } = "";

        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? Title { get; set; }

        /// <summary>The folder the file is written to (the current one by default), or the file's path.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? OutputPath { get; set; }

        [Parameter]
        [ValidateSet("Insert", "Replace")]
        public string Mode { get; set; } = "Insert";

        /// <summary>Where the module cannot bound the site's function (no symbol size, no unwind entry): its start.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? FunctionStart { get; set; }

        /// <summary>The declared function's end (exclusive).</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? FunctionEnd { get; set; }

        /// <summary>Overwrite an existing file.</summary>
        [Parameter]
        public SwitchParameter Force { get; set; }

        protected override void ProcessRecord()
        {
            if ((FunctionStart == null) != (FunctionEnd == null))
            {
                WriteError(new ErrorRecord(new ArgumentException("-FunctionStart and -FunctionEnd go together: the declared function is [start, end)."),
                    "InvalidLocation", ErrorCategory.InvalidArgument, At));
                return;
            }
            var request = new DraftRequest
            {
                Id = Id, Title = Title, At = At, FunctionStart = FunctionStart, FunctionEnd = FunctionEnd,
                Mode = Mode.Equals("Replace", StringComparison.OrdinalIgnoreCase) ? PatchMode.Replace : PatchMode.Insert,
            };
            MicropatchDraft draft;
            try
            {
                if (ParameterSetName == ProcessSet)
                    draft = PatchAuthor.DraftFromProcess(Engine.Platform, ProcessId, Module, request);
                else
                {
                    request.ModulePath = SessionState.Path.GetUnresolvedProviderPathFromPSPath(ModulePath);
                    if (!File.Exists(request.ModulePath))
                        throw new HotpatchException(HotpatchErrorKind.ModuleNotLoaded, Directory.Exists(request.ModulePath)
                            ? request.ModulePath + " is a folder, not a module file; name the library or executable in it."
                            : "The module file " + request.ModulePath + " does not exist.");
                    draft = PatchAuthor.Draft(request);
                }
            }
            catch (HotpatchException e)
            {
                var named = new HotpatchException(e.Kind, NameParameters(e.Message), e) { ProcessId = e.ProcessId, Patchlet = e.Patchlet };
                WriteFailure(named, (object?)ModulePath ?? ProcessId);
                return;
            }
            catch (ArgumentException e) { WriteError(new ErrorRecord(new ArgumentException(NameParameters(e.Message), e), "InvalidLocation", ErrorCategory.InvalidArgument, At)); return; }
            catch (IOException e) { WriteError(new ErrorRecord(e, "ModuleUnreadable", ErrorCategory.ReadError, ModulePath)); return; }

            string path = Destination(draft.Id);
            foreach (var w in draft.Warnings)
                WriteWarning(ReferenceEquals(w, draft.UnboundedSite) ? w.TrimEnd('.') + " (New-Micropatch -FunctionStart/-FunctionEnd)." : w);
            if (draft.Check.State != OfflineCheckState.Applies)
                WriteWarning("As written, the patch would not install: " + draft.Check.State + ": " + draft.Check.Reason);
            if (File.Exists(path) && !Force)
            {
                WriteError(new ErrorRecord(new IOException(path + " exists; -Force overwrites it."), "PatchFileExists", ErrorCategory.ResourceExists, path));
                return;
            }
            if (!ShouldProcess(path, "Write patch " + draft.Id + " for " + draft.Module + " at " + At)) return;
            try { File.WriteAllText(path, draft.Yaml, new UTF8Encoding(false)); }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                WriteError(new ErrorRecord(e, "PatchFileNotWritten", ErrorCategory.WriteError, path));
                return;
            }
            WriteObject(new FileInfo(path));
        }

        /// <summary>The engine labels the locations it resolves; the user typed them as these parameters.</summary>
        private static string NameParameters(string message) => message
            .Replace("(location)", "(-At)").Replace("(function start)", "(-FunctionStart)").Replace("(function end)", "(-FunctionEnd)");

        private string Destination(string id)
        {
            string fileName = id + ".micropatch.yaml";
            if (OutputPath == null) return System.IO.Path.Combine(SessionState.Path.CurrentFileSystemLocation.ProviderPath, fileName);
            string p = SessionState.Path.GetUnresolvedProviderPathFromPSPath(OutputPath);
            return Directory.Exists(p) ? System.IO.Path.Combine(p, fileName) : p;
        }
    }
}
