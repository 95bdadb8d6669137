<#
.SYNOPSIS
    Intune Remediations remediation script: apply every enabled HotpatchTools catalog patch now.

.DESCRIPTION
    Runs Sync-Micropatch once (unattended: -Force), then checks compliance again. Exits 0 when the device is
    now protected, 1 when it is not (the line says why). Writes one line of at most 2048 characters.

    Same settings as Intune-Detect.ps1: 64-bit PowerShell (in a 32-bit host the module refuses to patch, and
    the script exits 1 with its reason), SYSTEM. Registering the patch files in the catalog is done beforehand
    (for example by a Win32 app that runs Register-Micropatch).

.PARAMETER Module
    Where to import HotpatchTools from, as in Intune-Detect.ps1: its name on $env:PSModulePath (the default)
    or the path of its HotpatchTools.psd1.
#>
param([string] $Module = 'HotpatchTools')

$exitCode = 1
try {
    Import-Module -Name $Module -ErrorAction Stop
    $results = @(Sync-Micropatch -Force -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable syncErrors)
    $applied = @($results | Where-Object Result -eq 'Applied').Count
    $c = Test-MicropatchCompliance -ErrorAction SilentlyContinue
    if ($c.Compliant) {
        $exitCode = 0
        $line = "REMEDIATED: applied $applied, $($c.Patched) process(es) patched in all."
    }
    else {
        $failed = @($results | Where-Object Result -eq 'Failed' | ForEach-Object { "$($_.PatchId) pid $($_.ProcessId): $($_.ErrorId)" })
        $reasons = @($failed) + @($c.Details) + @($syncErrors | ForEach-Object { $_.Exception.Message })
        $line = "NOT REMEDIATED: applied $applied; " + ($reasons -join ' | ')
    }
}
catch {
    # A 32-bit host on 64-bit Windows lands here too: the module refuses it, with what to set.
    $line = 'NOT REMEDIATED: ' + $_.Exception.Message
}

$line = ($line -replace '\s*[\r\n]+\s*', ' ').Trim()
if ($line.Length -gt 2048) { $line = $line.Substring(0, 2045) + '...' }
# The line is the script's output (a bare value: Write-Output lives in a module a minimal host may lack).
$line
exit $exitCode
