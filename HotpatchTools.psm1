# Loads the binary module. A packaged module keeps HotpatchTools.dll in bin/ beside this file and the engine
# with its third-party assemblies in bin/Dependencies; a source checkout uses the newest build of
# src/HotpatchTools (Release or Debug), so `dotnet build` is enough.
# Only core cmdlets and .NET calls here: the module must load in any host, even one without the
# Management and Utility modules.
$candidates = @(
    [System.IO.Path]::Combine($PSScriptRoot, 'bin', 'HotpatchTools.dll')
    [System.IO.Path]::Combine($PSScriptRoot, 'src', 'HotpatchTools', 'bin', 'Release', 'netstandard2.0', 'HotpatchTools.dll')
    [System.IO.Path]::Combine($PSScriptRoot, 'src', 'HotpatchTools', 'bin', 'Debug', 'netstandard2.0', 'HotpatchTools.dll')
)
$assembly = $null
foreach ($candidate in $candidates) {
    if (-not [System.IO.File]::Exists($candidate)) { continue }
    if ($candidate.StartsWith([System.IO.Path]::Combine($PSScriptRoot, 'bin'))) { $assembly = $candidate; break }
    if ($null -eq $assembly -or [System.IO.File]::GetLastWriteTimeUtc($candidate) -gt [System.IO.File]::GetLastWriteTimeUtc($assembly)) {
        $assembly = $candidate
    }
}
if ($null -eq $assembly) {
    throw "HotpatchTools is not built: none of $($candidates -join ', ') exists. Run 'dotnet build -c Release' in $PSScriptRoot."
}
Import-Module -Name $assembly -ErrorAction Stop
Export-ModuleMember -Cmdlet 'Get-HotpatchTarget', 'Install-Micropatch', 'Uninstall-Micropatch', 'Get-Micropatch', 'Get-HotpatchModule', 'Get-MicropatchSite',
    'Register-Micropatch', 'Get-MicropatchCatalog', 'Enable-Micropatch', 'Disable-Micropatch', 'Unregister-Micropatch', 'Sync-Micropatch', 'Test-MicropatchCompliance', 'New-Micropatch', 'Test-Micropatch',
    'Set-MicropatchSignature', 'Get-MicropatchSignature', 'Add-MicropatchTrustedPublisher', 'Get-MicropatchTrustedPublisher', 'Remove-MicropatchTrustedPublisher', 'Get-MicropatchAuditLog' -Alias 'Remove-Micropatch'
