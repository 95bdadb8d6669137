using HotpatchTools.Completion;

namespace HotpatchTools.Commands
{
    /// <summary>Lists the patches registered in the machine catalog.</summary>
    [Cmdlet(VerbsCommon.Get, "MicropatchCatalog")]
    [OutputType(typeof(MicropatchCatalogEntry))]
    public sealed class GetMicropatchCatalogCommand : CatalogCommandBase
    {
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(CatalogPatchIdCompleter))]
        public string[]? PatchId { get; set; }

        protected override void ProcessRecord()
        {
            var entries = SelectEntries(PatchId, (folder, why) => WriteWarning("Catalog folder " + folder + " is not a readable entry: " + why));
            foreach (var e in entries) WriteObject(MicropatchCatalogEntry.From(e));
            // A literal id that matches nothing is an error, as Get-Item's is; a wildcard that matches nothing is not.
            if (PatchId != null)
                foreach (var id in PatchId)
                    if (!WildcardPattern.ContainsWildcardCharacters(id) && !entries.Exists(e => string.Equals(e.PatchId, id, System.StringComparison.OrdinalIgnoreCase)))
                        WriteError(new ErrorRecord(new ItemNotFoundException("Patch " + id + " is not registered in the catalog (" + Catalog.Directory + ")."),
                            "PatchNotRegistered", ErrorCategory.ObjectNotFound, id));
        }
    }
}
