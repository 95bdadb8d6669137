namespace HotpatchTools.Commands
{
    /// <summary>Lets Sync-Micropatch apply a registered patch again.</summary>
    [Cmdlet(VerbsLifecycle.Enable, "Micropatch", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
    [OutputType(typeof(MicropatchCatalogEntry))]
    public sealed class EnableMicropatchCommand : CatalogEntryCommandBase
    {
        internal override string Action => "Enable micropatch";
        internal override Engine.Catalog.CatalogEntry Change(string patchId) => Catalog.SetEnabled(patchId, true);
    }
}
