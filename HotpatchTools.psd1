@{
    RootModule           = 'HotpatchTools.psm1'
    ModuleVersion        = '0.1.0'
    GUID                 = '5b0f7a3e-6a52-4c1e-9a57-2f3d8c1b9e41'
    Author               = 'HotpatchTools'
    CompanyName          = 'HotpatchTools'
    Copyright            = '(c) HotpatchTools. All rights reserved.'
    Description          = 'Apply, list and remove micropatches in running processes without restarting them: module identity and original bytes verified, trampolines built with Iced, every thread out of the way before a byte changes.'
    PowerShellVersion    = '5.1'
    CompatiblePSEditions = @('Desktop', 'Core')
    CmdletsToExport      = @('Get-HotpatchTarget', 'Install-Micropatch', 'Uninstall-Micropatch', 'Get-Micropatch', 'Get-HotpatchModule', 'Get-MicropatchSite',
                             'Register-Micropatch', 'Get-MicropatchCatalog', 'Enable-Micropatch', 'Disable-Micropatch', 'Unregister-Micropatch', 'Sync-Micropatch', 'Test-MicropatchCompliance', 'New-Micropatch', 'Test-Micropatch',
                             'Set-MicropatchSignature', 'Get-MicropatchSignature', 'Add-MicropatchTrustedPublisher', 'Get-MicropatchTrustedPublisher', 'Remove-MicropatchTrustedPublisher', 'Get-MicropatchAuditLog')
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @('Remove-Micropatch')
    FormatsToProcess     = @('HotpatchTools.format.ps1xml')
    PrivateData          = @{
        PSData = @{
            Tags       = @('Hotpatch', 'Micropatch', 'Security', 'Patching', 'PSEdition_Desktop', 'PSEdition_Core', 'Windows', 'Linux')
            ProjectUri = 'https://example.invalid/hotpatchtools'
        }
    }
}
