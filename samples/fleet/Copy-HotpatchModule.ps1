<#
.SYNOPSIS
Copies a folder, such as the HotpatchTools module folder, to computers through open PowerShell sessions.

.DESCRIPTION
Copy-Item -ToSession is the way to deploy the module and patch files. This script is the fallback for
hosts that do not have it: it reads every file of the folder here and sends the bytes through each
session, where they are written below -Destination with the same relative paths. It returns one
object per computer with the number of files and bytes written. A session that fails is an error
record; the other sessions go on.

.EXAMPLE
$sessions = New-PSSession -HostName web01, web02 -UserName root
./Copy-HotpatchModule.ps1 -Session $sessions -Path ./artifacts/module/HotpatchTools -Destination /usr/local/share/powershell/Modules/HotpatchTools
#>
[CmdletBinding(SupportsShouldProcess = $true)]
param(
    [Parameter(Mandatory = $true)]
    [System.Management.Automation.Runspaces.PSSession[]] $Session,

    # The folder to copy, on this computer.
    [Parameter(Mandatory = $true)]
    [string] $Path,

    # The folder to create on each computer; the content of -Path goes inside it.
    [Parameter(Mandatory = $true)]
    [string] $Destination
)

$root = $PSCmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path).TrimEnd([char[]]'\/')
if (-not [System.IO.Directory]::Exists($root)) { throw "No folder $root." }
# Relative path (with /) to bytes: a hashtable of byte arrays crosses the wire intact.
$files = @{}
foreach ($file in [System.IO.Directory]::GetFiles($root, '*', [System.IO.SearchOption]::AllDirectories)) {
    $files[$file.Substring($root.Length + 1).Replace('\', '/')] = [System.IO.File]::ReadAllBytes($file)
}

$targets = @(foreach ($s in $Session) { if ($PSCmdlet.ShouldProcess($s.ComputerName, "Copy $($files.Count) files to $Destination")) { $s } })
if ($targets.Count -eq 0) { return }
Invoke-Command -Session $targets -ScriptBlock {
    param($Destination, $Files)
    $bytes = 0
    foreach ($relative in $Files.Keys) {
        $target = [System.IO.Path]::Combine($Destination, $relative)
        $null = [System.IO.Directory]::CreateDirectory([System.IO.Path]::GetDirectoryName($target))
        [System.IO.File]::WriteAllBytes($target, [byte[]]$Files[$relative])
        $bytes += $Files[$relative].Length
    }
    [pscustomobject]@{ ComputerName = [System.Environment]::MachineName; Destination = $Destination; Files = $Files.Count; Bytes = $bytes }
} -ArgumentList $Destination, $files
