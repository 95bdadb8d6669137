using HotpatchTools.Completion;

namespace HotpatchTools.Commands
{
    /// <summary>Copies a patch file into the machine catalog, from where Sync-Micropatch applies it everywhere.</summary>
    [Cmdlet(VerbsLifecycle.Register, "Micropatch", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
    [OutputType(typeof(MicropatchCatalogEntry))]
    public sealed class RegisterMicropatchCommand : CatalogCommandBase
    {
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("FullName", "PSPath")]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(MicropatchPathCompleter))]
        public string Path { get; set; } = "";

        /// <summary>Accepts an unsigned file, and records that every later use of the entry may load it unsigned.</summary>
        [Parameter]
        public SwitchParameter AllowUnsigned { get; set; }

        /// <summary>Register without enforcing: Sync-Micropatch skips the entry until Enable-Micropatch.</summary>
        [Parameter]
        public SwitchParameter Disabled { get; set; }

        /// <summary>Skip the confirmation and replace an entry of the same id with different content.</summary>
        [Parameter]
        public SwitchParameter Force { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void BeginProcessing() => RequireElevation("Registering a micropatch in the machine catalog");

        protected override void ProcessRecord()
        {
            foreach (var file in ResolvePaths(new[] { Path }, literal: false))
            {
                var patch = LoadPatch(file, AllowUnsigned);
                if (patch == null) continue;
                if (!ShouldWrite(Force, "catalog " + Catalog.Directory, "Register micropatch " + patch.Id + " (" + patch.Title + ") from " + file)) continue;
                try
                {
                    var entry = Catalog.Register(patch, file, enabled: !Disabled, allowUnsigned: AllowUnsigned, replace: Force);
                    WriteVerbose("registered " + entry.PatchId + " at " + entry.PatchPath + (entry.SignaturePath != null ? " with its signature" : ""));
                    if (PassThru) WriteObject(MicropatchCatalogEntry.From(entry));
                }
                catch (HotpatchException e)
                {
                    if (e.Kind == HotpatchErrorKind.AlreadyInstalled) e.Advice ??= "Use -Force to replace it.";
                    WriteFailure(e, file);
                }
                catch (System.Exception e) when (e is System.IO.IOException || e is System.UnauthorizedAccessException)
                {
                    WriteError(new ErrorRecord(e, "CatalogWriteFailed", ErrorCategory.WriteError, file));
                }
            }
        }
    }
}
