namespace HotpatchTools.Tests.Support
{
    /// <summary>Every command the module exports (cmdlets and the Remove-Micropatch alias), in ordinal order.</summary>
    public static class ModuleCommands
    {
        public static readonly string[] Exported =
        {
            "Add-MicropatchTrustedPublisher",
            "Disable-Micropatch",
            "Enable-Micropatch",
            "Get-HotpatchModule",
            "Get-HotpatchTarget",
            "Get-Micropatch",
            "Get-MicropatchAuditLog",
            "Get-MicropatchCatalog",
            "Get-MicropatchSignature",
            "Get-MicropatchSite",
            "Get-MicropatchTrustedPublisher",
            "Install-Micropatch",
            "New-Micropatch",
            "Register-Micropatch",
            "Remove-Micropatch",
            "Remove-MicropatchTrustedPublisher",
            "Set-MicropatchSignature",
            "Sync-Micropatch",
            "Test-Micropatch",
            "Test-MicropatchCompliance",
            "Uninstall-Micropatch",
            "Unregister-Micropatch",
        };
    }
}
