using HotpatchTools.Completion;

namespace HotpatchTools.Commands
{
    /// <summary>Enable-, Disable- and Unregister-Micropatch: one change to one catalog entry, by exact id.</summary>
    public abstract class CatalogEntryCommandBase : CatalogCommandBase
    {
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(CatalogPatchIdCompleter))]
        public string[] PatchId { get; set; } = new string[0];

        [Parameter]
        public SwitchParameter Force { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        internal abstract string Action { get; }

        internal abstract Engine.Catalog.CatalogEntry Change(string patchId);

        protected override void BeginProcessing() => RequireElevation(Action + " in the machine catalog");

        protected override void ProcessRecord()
        {
            foreach (var id in PatchId)
            {
                var entry = FindEntry(id);
                if (entry == null) continue;
                if (!ShouldWrite(Force, "catalog entry " + entry.PatchId + " (" + entry.Module + ")", Action)) continue;
                try
                {
                    var changed = Change(entry.PatchId);
                    if (PassThru) WriteObject(MicropatchCatalogEntry.From(changed));
                }
                catch (HotpatchException e) { WriteFailure(e, id); }
                catch (System.Exception e) when (e is System.IO.IOException || e is System.UnauthorizedAccessException)
                {
                    WriteError(new ErrorRecord(e, "CatalogWriteFailed", ErrorCategory.WriteError, id));
                }
            }
        }
    }
}
