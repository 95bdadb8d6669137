<#
.SYNOPSIS
    Configuration Manager configuration item discovery script: is this device protected by its HotpatchTools catalog?

.DESCRIPTION
    Writes exactly one value, which the configuration item's compliance rule compares:
      Compliant             every enabled catalog patch is installed wherever it applies
      NonCompliant          a process is left vulnerable, a patch failed, or the catalog has a broken entry
      NotChecked-32BitHost  a 32-bit host on 64-bit Windows cannot inspect 64-bit processes (the module refuses it)
      Error                 the module could not be loaded or the check failed
    Setting type: Script, data type String; compliance rule: the value equals "Compliant". Clear "Run scripts
    by using the logged on user credentials" and "Run script as 32-bit process on 64-bit devices". A
    remediation script for the rule runs Sync-Micropatch -Force.

    The script always exits 0: Configuration Manager treats a non-zero exit code as a failed script, not as
    a value.

.PARAMETER Module
    The module to import: a name on $env:PSModulePath (the default) or the path of HotpatchTools.psd1.
#>
param([string] $Module = 'HotpatchTools')

try {
    Import-Module -Name $Module -ErrorAction Stop
    $compliant = Test-MicropatchCompliance -Quiet -ErrorAction SilentlyContinue
    $value = if ($compliant -eq $true) { 'Compliant' } else { 'NonCompliant' }
}
catch {
    # On Windows the module stops with PlatformNotSupported only in a 32-bit host, which cannot read 64-bit processes.
    $value = if ($_.FullyQualifiedErrorId -like 'PlatformNotSupported,*') { 'NotChecked-32BitHost' } else { 'Error' }
}

# The value is the script's only output (a bare value: Write-Output lives in a module a minimal host may lack).
$value
exit 0
