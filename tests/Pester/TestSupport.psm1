# What the Pester suite shares: live targets compiled from tests/native (as the xunit tests compile them),
# patch files written as an author would, and a machine root of the run's own.
# Imported by every *.Tests.ps1 beside it; build.ps1 -Test runs them all in one pwsh.
Set-StrictMode -Version Latest

$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
$script:Targets = [System.Collections.Generic.List[System.Diagnostics.Process]]::new()

# The cmdlets write trust store, catalog and audit log under the machine root: never the real /var/lib here.
if (-not $env:HOTPATCHTOOLS_MACHINE_ROOT) {
    $env:HOTPATCHTOOLS_MACHINE_ROOT = (New-Item -ItemType Directory -Path (Join-Path ([System.IO.Path]::GetTempPath()) "hpt-pester-machine-$PID") -Force).FullName
}

function Get-RepoRoot { $script:RepoRoot }

function Get-ManifestPath { Join-Path $script:RepoRoot 'HotpatchTools.psd1' }

# The target under a module name of its own: machine-wide installs in this suite must reach only its targets,
# not those of another test run on the same machine.
function Get-TestTargetPath {
    param([string] $Name = 'psttarget')
    $native = Join-Path $script:RepoRoot 'tests/native'
    $sources = @('target.c', 'sites.S') | ForEach-Object { Join-Path $native $_ }
    $text = ($sources | ForEach-Object { [System.IO.File]::ReadAllText($_) }) -join "`n"
    $hash = [System.Convert]::ToHexString([System.Security.Cryptography.SHA256]::HashData([System.Text.Encoding]::UTF8.GetBytes($text))).Substring(0, 16)
    $dir = Join-Path ([System.IO.Path]::GetTempPath()) "hotpatchtools-pester-native/$hash"
    $exe = Join-Path $dir $Name
    if (-not (Test-Path $exe)) {
        $null = New-Item -ItemType Directory -Path $dir -Force
        $tmp = "$exe.tmp$PID"
        & gcc -O2 -pthread -o $tmp @sources
        if ($LASTEXITCODE -ne 0) { throw "gcc failed ($LASTEXITCODE)" }
        Move-Item -Force $tmp $exe
    }
    $exe
}

# Starts a target; it runs until Stop-TestTarget (or the end of the suite) and answers `call FN X` on stdin.
function Start-TestTarget {
    param([string] $Name = 'psttarget')
    $psi = [System.Diagnostics.ProcessStartInfo]::new((Get-TestTargetPath -Name $Name))
    $psi.RedirectStandardInput = $true
    $psi.RedirectStandardOutput = $true
    $psi.UseShellExecute = $false
    $p = [System.Diagnostics.Process]::Start($psi)
    $script:Targets.Add($p)
    $ready = $p.StandardOutput.ReadLine()
    if ($ready -notmatch '^ready \d+$') { throw "target did not start: '$ready'" }
    $p
}

function Invoke-TestTarget {
    param([Parameter(Mandatory)] [System.Diagnostics.Process] $Target, [string] $Function = 'triple', [int] $Argument = 500)
    $Target.StandardInput.WriteLine("call $Function $Argument")
    $Target.StandardInput.Flush()
    [int] $Target.StandardOutput.ReadLine()
}

function Stop-TestTarget {
    param([System.Diagnostics.Process[]] $Target = @($script:Targets))
    foreach ($p in $Target) {
        if (-not $p.HasExited) { $p.Kill(); $null = $p.WaitForExit(5000) }
        $null = $script:Targets.Remove($p)
        $p.Dispose()
    }
}

# The bytes of triple() in tests/native/sites.S (lea eax, [rdi+rdi*2]; add eax, 1) and a bound check for it:
# above 100 it returns -1, so a call shows whether the patch is in.
function New-TestPatch {
    param(
        [Parameter(Mandatory)] [string] $Directory,
        [Parameter(Mandatory)] [string] $Id,
        [string] $Module = 'psttarget',
        [string] $At = 'triple',
        [string] $Expect = '8d 04 7f 83 c0 01',
        [string] $Code = "cmp edi, 100`njbe resume`nmov eax, -1`nret"
    )
    $null = New-Item -ItemType Directory -Path $Directory -Force
    $lines = @('format: 1', "id: $Id", "title: Pester patch $Id", 'target:', '  os: linux', '  arch: x64', "  module: $Module",
        'patchlets:', "  - at: $At", "    expect: $Expect", '    code: |') + ($Code -split "`n" | ForEach-Object { "      $_" })
    $path = Join-Path $Directory "$Id.micropatch.yaml"
    [System.IO.File]::WriteAllText($path, ($lines -join "`n") + "`n")
    $path
}

function New-TestDirectory {
    param([string] $Name = 'hpt-pester')
    (New-Item -ItemType Directory -Path (Join-Path ([System.IO.Path]::GetTempPath()) "$Name-$([guid]::NewGuid().ToString('n').Substring(0, 8))")).FullName
}

Export-ModuleMember -Function Get-RepoRoot, Get-ManifestPath, Get-TestTargetPath, Start-TestTarget, Invoke-TestTarget, Stop-TestTarget, New-TestPatch, New-TestDirectory

# This pwsh as a command line for a child process: the tool-installed pwsh is pwsh.dll run by dotnet.
function Get-PwshCommand {
    $exe = [Environment]::ProcessPath
    if ([System.IO.Path]::GetFileNameWithoutExtension($exe) -eq 'dotnet') { @($exe, (Join-Path $PSHOME 'pwsh.dll')) } else { @($exe) }
}

# Runs a script file in a child pwsh with extra environment variables; returns its output lines, throws on a
# non-zero exit with what it printed.
function Invoke-ChildPwsh {
    param([Parameter(Mandatory)] [string] $File, [hashtable] $Environment = @{}, [string[]] $ArgumentList = @(), [int] $TimeoutSeconds = 300)
    $cmd = @(Get-PwshCommand)
    $psi = [System.Diagnostics.ProcessStartInfo]::new($cmd[0])
    foreach ($a in @($cmd | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-File', $File) + $ArgumentList) { $psi.ArgumentList.Add($a) }
    foreach ($k in $Environment.Keys) { $psi.Environment[$k] = $Environment[$k] }
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.UseShellExecute = $false
    # Anything the child leaves in its current folder stays beside its script, not in the checkout.
    $psi.WorkingDirectory = Split-Path -Parent $File
    $p = [System.Diagnostics.Process]::Start($psi)
    $err = $p.StandardError.ReadToEndAsync()
    $out = $p.StandardOutput.ReadToEndAsync()
    if (-not $p.WaitForExit($TimeoutSeconds * 1000)) { $p.Kill($true); throw "$File did not finish in $TimeoutSeconds s" }
    $p.WaitForExit()
    $text = $out.Result + $err.Result
    if ($p.ExitCode -ne 0) { throw "$File exited with $($p.ExitCode):`n$text" }
    $text -split "`r?`n" | Where-Object { $_ -ne '' }
}

Export-ModuleMember -Function Get-PwshCommand, Invoke-ChildPwsh
