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

        // Objects piped in often share an id (Get-Micropatch lists a patch once per process): one entry is written once,
        // and an id missing from the catalog is one error.
        private readonly HashSet<string> _written = new HashSet<string>(System.StringComparer.OrdinalIgnoreCase);
        private readonly HashSet<string> _missing = new HashSet<string>(System.StringComparer.OrdinalIgnoreCase);
        private bool _listed;

        protected override void ProcessRecord()
        {
            bool first = !_listed;
            _listed = true;
            var entries = SelectEntries(PatchId, (folder, why) => { if (first) WriteWarning("Catalog folder " + folder + " is not a readable entry: " + why); });
            foreach (var e in entries)
                if (_written.Add(e.PatchId)) WriteObject(MicropatchCatalogEntry.From(e));
            // A literal id that matches nothing is an error, as Get-Item's is; a wildcard that matches nothing is not.
            if (PatchId != null)
                foreach (var id in PatchId)
                    if (!WildcardPattern.ContainsWildcardCharacters(id) && !entries.Exists(e => string.Equals(e.PatchId, id, System.StringComparison.OrdinalIgnoreCase)) && _missing.Add(id))
                        WriteError(new ErrorRecord(new ItemNotFoundException("Patch " + id + " is not registered in the catalog (" + Catalog.Directory + ")."),
                            "PatchNotRegistered", ErrorCategory.ObjectNotFound, id));
        }
    }
}
