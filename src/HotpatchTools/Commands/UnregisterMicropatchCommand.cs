namespace HotpatchTools.Commands
{
    /// <summary>Removes a patch from the catalog; installed copies stay installed (Uninstall-Micropatch removes them).</summary>
    [Cmdlet(VerbsLifecycle.Unregister, "Micropatch", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
    [OutputType(typeof(MicropatchCatalogEntry))]
    public sealed class UnregisterMicropatchCommand : CatalogEntryCommandBase
    {
        internal override string Action => "Unregister micropatch";
        internal override Engine.Catalog.CatalogEntry Change(string patchId) => Catalog.Unregister(patchId);
    }
}
