<#
.SYNOPSIS
Runs one HotpatchTools operation on many computers at once over PowerShell remoting.

.DESCRIPTION
The fan-out pattern of about_HotpatchTools_Fleet as a script: Invoke-Command runs the same
HotpatchTools command on every computer in parallel (up to -ThrottleLimit at a time), and what comes
back is what the cmdlets return, each object with ComputerName and PSComputerName.

A patch file is read here and its bytes are sent with the command, with its detached signature
(<file>.sig) when there is one, so neither need be copied to the computers first; each computer checks
the signature against its own trusted publishers. A computer that cannot be reached, or where the module cannot be imported, is an
error record whose target is the computer name; the others go on. Patch refusals on a computer arrive
as the module's own error records (ErrorId ExpectMismatch, ProcessNotFound, ...).

Only core cmdlets are used, so the script runs in any PowerShell 5.1 or 7 host.

.EXAMPLE
./Invoke-HotpatchFleet.ps1 -ComputerName web01, web02, web03 -Action Install -PatchFile ./HP-2026-0001.micropatch.yaml -Force

.EXAMPLE
./Invoke-HotpatchFleet.ps1 -HostName root@web01, root@web02:2222 -KeyFilePath ~/.ssh/fleet -Action List
#>
[CmdletBinding(DefaultParameterSetName = 'ComputerName', SupportsShouldProcess = $true, ConfirmImpact = 'High')]
param(
    # Computers reached through WinRM (Windows remoting).
    [Parameter(Mandatory = $true, ParameterSetName = 'ComputerName')]
    [string[]] $ComputerName,

    # Computers reached through SSH (PowerShell 7): host, user@host or user@host:port.
    [Parameter(Mandatory = $true, ParameterSetName = 'HostName')]
    [string[]] $HostName,

    # Sessions opened beforehand (New-PSSession), of any transport.
    [Parameter(Mandatory = $true, ParameterSetName = 'Session')]
    [System.Management.Automation.Runspaces.PSSession[]] $Session,

    [Parameter(ParameterSetName = 'ComputerName')]
    [System.Management.Automation.PSCredential] $Credential,

    # A JEA endpoint that exposes the HotpatchTools cmdlets.
    [Parameter(ParameterSetName = 'ComputerName')]
    [string] $ConfigurationName,

    [Parameter(ParameterSetName = 'HostName')]
    [string] $UserName,

    [Parameter(ParameterSetName = 'HostName')]
    [int] $Port,

    [Parameter(ParameterSetName = 'HostName')]
    [string] $KeyFilePath,

    # ssh options, e.g. @{ StrictHostKeyChecking = 'yes' } (PowerShell 7.3 and later).
    [Parameter(ParameterSetName = 'HostName')]
    [hashtable] $SSHOption,

    # Test: Get-HotpatchTarget; Install: Install-Micropatch; List: Get-Micropatch; Uninstall: Uninstall-Micropatch.
    [Parameter(Mandatory = $true)]
    [ValidateSet('Test', 'Install', 'List', 'Uninstall')]
    [string] $Action,

    # The patch file on this computer (Test, Install). Its bytes are sent to every computer.
    [string] $PatchFile,

    # Patch id (Uninstall; optional filter for List).
    [string] $PatchId,

    # Only these processes on every computer.
    [int[]] $ProcessId,

    # The module to import on the computers: a name on their PSModulePath, or a path to HotpatchTools.psd1.
    [string] $Module = 'HotpatchTools',

    [int] $ThrottleLimit = 32,

    # Install a patch file that has no signature (each computer still refuses a bad or untrusted one).
    [switch] $AllowUnsigned,

    # Install and uninstall without asking, once per computer.
    [switch] $Force
)

if ($Action -in 'Test', 'Install' -and -not $PatchFile) { throw "-Action $Action needs -PatchFile." }
if ($Action -eq 'Uninstall' -and -not $PatchId) { throw '-Action Uninstall needs -PatchId.' }

$patchName = $null
$patchBytes = $null
$signatureBytes = $null
if ($PatchFile) {
    $resolved = $PSCmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($PatchFile)
    $patchName = [System.IO.Path]::GetFileName($resolved)
    $patchBytes = [System.IO.File]::ReadAllBytes($resolved)
    if ([System.IO.File]::Exists("$resolved.sig")) { $signatureBytes = [System.IO.File]::ReadAllBytes("$resolved.sig") }
}

# Runs on each computer; only core cmdlets and .NET, so it works in a constrained host too.
$remote = {
    param($Action, $Module, $PatchName, $PatchBytes, $PatchId, $ProcessId, $SignatureBytes, $AllowUnsigned)
    Import-Module -Name $Module -ErrorAction Stop
    $path = $null
    if ($PatchBytes) {
        $dir = [System.IO.Path]::Combine([System.IO.Path]::GetTempPath(), 'HotpatchTools-fleet')
        $null = [System.IO.Directory]::CreateDirectory($dir)
        $path = [System.IO.Path]::Combine($dir, $PatchName)
        [System.IO.File]::WriteAllBytes($path, [byte[]]$PatchBytes)
        # A signature left from an earlier run must not stand beside other bytes.
        if ($SignatureBytes) { [System.IO.File]::WriteAllBytes("$path.sig", [byte[]]$SignatureBytes) }
        elseif ([System.IO.File]::Exists("$path.sig")) { [System.IO.File]::Delete("$path.sig") }
    }
    $only = @{}
    if ($ProcessId) { $only.ProcessId = $ProcessId }
    switch ($Action) {
        'Test' { Get-HotpatchTarget -Path $path @only }
        'Install' { Install-Micropatch -Path $path @only -AllowUnsigned:$AllowUnsigned -Force -PassThru }
        'List' { if ($PatchId) { Get-Micropatch -PatchId $PatchId @only } else { Get-Micropatch @only } }
        'Uninstall' { Uninstall-Micropatch -PatchId $PatchId @only -Force -PassThru }
    }
}

# Always an array: one computer name is a string, and indexing a string gives its characters.
$targets = @(switch ($PSCmdlet.ParameterSetName) {
    'ComputerName' { $ComputerName }
    'HostName' { $HostName }
    'Session' { $Session }
})
if ($Action -in 'Install', 'Uninstall') {
    $what = if ($Action -eq 'Install') { "Install micropatch $patchName" } else { "Uninstall micropatch $PatchId" }
    $targets = @(foreach ($t in $targets) {
        $name = if ($t -is [System.Management.Automation.Runspaces.PSSession]) { $t.ComputerName } else { $t }
        if (($Force -and -not $WhatIfPreference) -or $PSCmdlet.ShouldProcess($name, $what)) { $t }
    })
    if ($targets.Count -eq 0) { return }
}

# Sessions first, so a computer that cannot be reached is known by name: its error becomes one
# ComputerUnreachable record with the computer name as target, and the others go on. (The SSH parameter
# sets of New-PSSession and Invoke-Command have no -ThrottleLimit: sessions are opened in batches.)
$sessions = @()
$opened = @()
switch ($PSCmdlet.ParameterSetName) {
    'Session' { $sessions = @($targets) }
    default {
        $open = @{}
        if ($PSCmdlet.ParameterSetName -eq 'ComputerName') {
            if ($Credential) { $open.Credential = $Credential }
            if ($ConfigurationName) { $open.ConfigurationName = $ConfigurationName }
        } else {
            if ($UserName) { $open.UserName = $UserName }
            if ($Port) { $open.Port = $Port }
            if ($KeyFilePath) { $open.KeyFilePath = $KeyFilePath }
            if ($SSHOption) { $open.Options = $SSHOption }
        }
        for ($i = 0; $i -lt $targets.Count; $i += $ThrottleLimit) {
            $batch = @($targets[$i..([Math]::Min($i + $ThrottleLimit, $targets.Count) - 1)])
            if ($PSCmdlet.ParameterSetName -eq 'ComputerName') { $open.ComputerName = $batch } else { $open.HostName = $batch }
            # A nested pipeline, so New-PSSession's own error does not also reach the caller's -ErrorVariable: one
            # record per computer that cannot be reached, not two.
            $nested = [powershell]::Create([System.Management.Automation.RunspaceMode]::CurrentRunspace)
            try {
                $opened += @($nested.AddCommand('New-PSSession').AddParameters($open).AddParameter('ErrorAction', 'Continue').Invoke())
                $failed = @($nested.Streams.Error)
            }
            finally { $nested.Dispose() }
            foreach ($e in $failed) {
                $name = if ($e.TargetObject -is [System.Management.Automation.Runspaces.Runspace]) { $e.TargetObject.ConnectionInfo.ComputerName } else { [string]$e.TargetObject }
                $record = [System.Management.Automation.ErrorRecord]::new($e.Exception, 'ComputerUnreachable', [System.Management.Automation.ErrorCategory]::ConnectionError, $name)
                $record.ErrorDetails = [System.Management.Automation.ErrorDetails]::new("${name}: $($e.Exception.Message)")
                $PSCmdlet.WriteError($record)
            }
        }
        $sessions = $opened
    }
}
if ($sessions.Count -eq 0) { return }
try {
    # Each computer's own errors (ExpectMismatch, ProcessNotFound, ...) come back as error records with
    # their ErrorId and the computer in OriginInfo; none of them stops the other computers.
    Invoke-Command -Session $sessions -ThrottleLimit $ThrottleLimit -ScriptBlock $remote -ArgumentList $Action, $Module, $patchName, $patchBytes, $PatchId, $ProcessId, $signatureBytes, $AllowUnsigned.IsPresent
}
finally {
    if ($opened.Count -gt 0) { Remove-PSSession -Session $opened }
}
