<#
.SYNOPSIS
    Intune Remediations detection script: is this device protected by its HotpatchTools catalog?

.DESCRIPTION
    Exits 0 when every enabled catalog patch is installed in every running process it applies to, and 1
    otherwise (Intune then runs Intune-Remediate.ps1). An empty catalog exits 1 too: a device where no patch
    was ever registered enforces nothing, and must not show as protected. Writes one line of at most 2048 characters, which
    Intune shows in the "Pre-remediation detection output" column.

    Set "Run script in 64-bit PowerShell" to Yes and "Run this script using the logged-on credentials" to No
    (the script needs SYSTEM). A 32-bit host on 64-bit Windows cannot inspect 64-bit processes: the module
    refuses to check there (PlatformNotSupported), and the script writes NOT CHECKED with the module's reason
    and exits 1, so the device shows up as needing attention instead of as compliant.

.PARAMETER Module
    The module to import: a name on $env:PSModulePath (the default) or the path of HotpatchTools.psd1.
#>
param([string] $Module = 'HotpatchTools')

$exitCode = 1
try {
    Import-Module -Name $Module -ErrorAction Stop
    $c = Test-MicropatchCompliance -ErrorAction SilentlyContinue
    if ($c.PatchCount -eq 0) {
        $line = 'NOT COMPLIANT: the catalog is empty, nothing is enforced on this device; deploy the patch files and Register-Micropatch them.'
    }
    elseif ($c.Compliant) {
        $exitCode = 0
        $line = "COMPLIANT: $($c.PatchCount) patch(es) enforced, $($c.Patched) process(es) patched, $($c.Mismatch) of another build."
    }
    else {
        $line = "NOT COMPLIANT: $($c.Vulnerable) vulnerable, $($c.Failed) failed. " + ($c.Details -join ' | ')
    }
}
catch {
    # On Windows the module stops with PlatformNotSupported only in a 32-bit host; its message says what to set.
    $line = $(if ($_.FullyQualifiedErrorId -like 'PlatformNotSupported,*') { 'NOT CHECKED: ' } else { 'ERROR: ' }) + $_.Exception.Message
}

# One line, within Intune's 2048 characters.
$line = ($line -replace '\s*[\r\n]+\s*', ' ').Trim()
if ($line.Length -gt 2048) { $line = $line.Substring(0, 2045) + '...' }
# The line is the script's output (a bare value: Write-Output lives in a module a minimal host may lack).
$line
exit $exitCode
