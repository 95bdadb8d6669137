#Requires -RunAsAdministrator
<#
.SYNOPSIS
    Registers the HotpatchTools enforcement tasks in Task Scheduler (Windows).

.DESCRIPTION
    \HotpatchTools\Enforce runs one Sync-Micropatch pass at startup and every -EnforceEvery.
    \HotpatchTools\Watch runs Sync-Micropatch -Watch from boot on, restarted every minute if it stops
    (unless -NoWatch). Both run as SYSTEM with the highest privileges in 64-bit Windows PowerShell, which
    must find the HotpatchTools module on its PSModulePath (for example under
    "$env:ProgramFiles\WindowsPowerShell\Modules"). Running it again updates the tasks.
    See about_HotpatchTools_Enforcement.

.PARAMETER EnforceEvery
    How often the Enforce task runs. Default: 5 minutes.

.PARAMETER WatchInterval
    The -Interval of the watch, in seconds. Default: 2.

.PARAMETER NoWatch
    Register only the periodic Enforce task (and remove a Watch task registered earlier).
#>
param(
    [TimeSpan] $EnforceEvery = (New-TimeSpan -Minutes 5),
    [double] $WatchInterval = 2,
    [switch] $NoWatch
)

$ErrorActionPreference = 'Stop'
$taskPath = '\HotpatchTools\'
# Task Scheduler runs 64-bit; System32 is then the 64-bit PowerShell, which 64-bit targets need.
$powershell = Join-Path $env:SystemRoot 'System32\WindowsPowerShell\v1.0\powershell.exe'
$common = '-NoLogo -NoProfile -NonInteractive -ExecutionPolicy RemoteSigned -Command'
$principal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest

$enforceSettings = New-ScheduledTaskSettingsSet -StartWhenAvailable -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries `
    -MultipleInstances IgnoreNew -ExecutionTimeLimit (New-TimeSpan -Minutes 30)
$enforce = New-ScheduledTaskAction -Execute $powershell -Argument "$common `"Import-Module HotpatchTools -ErrorAction Stop; Sync-Micropatch -Force`""
$every = New-ScheduledTaskTrigger -Once -At (Get-Date) -RepetitionInterval $EnforceEvery
$boot = New-ScheduledTaskTrigger -AtStartup
Register-ScheduledTask -TaskPath $taskPath -TaskName 'Enforce' -Action $enforce -Trigger $every, $boot -Principal $principal `
    -Settings $enforceSettings -Description 'HotpatchTools: apply the machine catalog to running processes (one pass).' -Force | Out-Null

if ($NoWatch) {
    Unregister-ScheduledTask -TaskPath $taskPath -TaskName 'Watch' -Confirm:$false -ErrorAction SilentlyContinue
}
else {
    # No time limit, and restarted if PowerShell ever exits: the watch is meant to run as long as the computer does.
    $watchSettings = New-ScheduledTaskSettingsSet -StartWhenAvailable -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries `
        -MultipleInstances IgnoreNew -ExecutionTimeLimit ([TimeSpan]::Zero) -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1)
    $interval = $WatchInterval.ToString([Globalization.CultureInfo]::InvariantCulture)
    $watch = New-ScheduledTaskAction -Execute $powershell -Argument "$common `"Import-Module HotpatchTools -ErrorAction Stop; Sync-Micropatch -Watch -Force -Interval $interval`""
    Register-ScheduledTask -TaskPath $taskPath -TaskName 'Watch' -Action $watch -Trigger $boot -Principal $principal `
        -Settings $watchSettings -Description 'HotpatchTools: apply the machine catalog to processes as they start and modules as they load.' -Force | Out-Null
    Start-ScheduledTask -TaskPath $taskPath -TaskName 'Watch'
}

Get-ScheduledTask -TaskPath $taskPath
