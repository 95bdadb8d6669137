namespace HotpatchTools.Commands
{
    /// <summary>Keeps a registered patch but stops Sync-Micropatch from applying it; installed copies stay installed.</summary>
    [Cmdlet(VerbsLifecycle.Disable, "Micropatch", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
    [OutputType(typeof(MicropatchCatalogEntry))]
    public sealed class DisableMicropatchCommand : CatalogEntryCommandBase
    {
        internal override string Action => "Disable micropatch";
        internal override Engine.Catalog.CatalogEntry Change(string patchId) => Catalog.SetEnabled(patchId, false);
    }
}
