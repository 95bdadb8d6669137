<#
.SYNOPSIS
    Starts the demo's vulnerable service and leaves it running, with signed patch files beside it, so that
    README's "Using the module" can be followed as written.
.DESCRIPTION
    Run as root from the repository root, in the repository's pwsh, after `dotnet build -c Release`:

        dotnet tool restore && dotnet pwsh ./demo/Start-Playground.ps1

    It builds demo/vulnsvc.c with gcc into playground/ and starts it detached (it keeps running after this
    script and the shell exit; its output goes to playground/vulnsvc.log); writes the demo's patch as
    ./HP-2026-0001.micropatch.yaml and ./patches/HP-2026-0001.micropatch.yaml (the names README uses), signs
    both with a playground certificate made here (playground/publisher.pfx, .cer) and trusts that certificate
    with Add-MicropatchTrustedPublisher. It prints the service's process id and how to stop the playground.
    Every file it writes is ignored by git. -Path puts the files elsewhere; -Name gives the service another
    module name (the patch files follow it).
#>
[CmdletBinding()]
param(
    [string] $Path = (Get-Location).ProviderPath,
    [ValidatePattern('^[A-Za-z0-9_.-]{1,15}$')]
    [string] $Name = 'vulnsvc'
)
$ErrorActionPreference = 'Stop'
$repo = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $repo 'HotpatchTools.psd1')

$work = Join-Path $Path 'playground'
$patches = Join-Path $Path 'patches'
$null = New-Item -ItemType Directory -Force -Path $work, $patches
$exe = Join-Path $work $Name
& gcc -O2 -o $exe (Join-Path $repo 'demo/vulnsvc.c')
if ($LASTEXITCODE -ne 0) { throw "gcc failed ($LASTEXITCODE)" }

# The demo's patch under the README's file name and id, for this service's module name.
$yaml = (Get-Content -Raw (Join-Path $repo 'demo/HP-DEMO-0001.micropatch.yaml')) -replace '(?m)^id: .*$', 'id: HP-2026-0001' -replace '(?m)^  module: .*$', "  module: $Name"
$files = @((Join-Path $Path 'HP-2026-0001.micropatch.yaml'), (Join-Path $patches 'HP-2026-0001.micropatch.yaml'))
foreach ($f in $files) { [System.IO.File]::WriteAllText($f, $yaml) }

# A code-signing certificate of the playground's own, trusted on this machine, so installs need no -AllowUnsigned.
$rsa = [System.Security.Cryptography.RSA]::Create(3072)
$request = [System.Security.Cryptography.X509Certificates.CertificateRequest]::new('CN=HotpatchTools Playground', $rsa, 'SHA256', [System.Security.Cryptography.RSASignaturePadding]::Pkcs1)
$usage = [System.Security.Cryptography.OidCollection]::new()
$null = $usage.Add([System.Security.Cryptography.Oid]::new('1.3.6.1.5.5.7.3.3'))
$request.CertificateExtensions.Add([System.Security.Cryptography.X509Certificates.X509EnhancedKeyUsageExtension]::new($usage, $false))
$cert = $request.CreateSelfSigned([DateTimeOffset]::Now.AddMinutes(-5), [DateTimeOffset]::Now.AddDays(30))
[System.IO.File]::WriteAllBytes((Join-Path $work 'publisher.pfx'), $cert.Export([System.Security.Cryptography.X509Certificates.X509ContentType]::Pfx))
[System.IO.File]::WriteAllBytes((Join-Path $work 'publisher.cer'), $cert.Export([System.Security.Cryptography.X509Certificates.X509ContentType]::Cert))
Set-MicropatchSignature -Path $files -PfxPath (Join-Path $work 'publisher.pfx') -Force
$null = Add-MicropatchTrustedPublisher -Path (Join-Path $work 'publisher.cer') -Force

# Detached through a shell that exits at once, as a real service is nobody's child; it outlives this script.
$log = Join-Path $work 'vulnsvc.log'
$pidFile = Join-Path $work 'vulnsvc.pid'
& /bin/sh -c "cd '$work' && setsid '$exe' </dev/null >'$log' 2>&1 & echo `$! > '$pidFile'"
$servicePid = [int](Get-Content $pidFile)
Start-Sleep -Milliseconds 200
if (-not (Get-Process -Id $servicePid -ErrorAction SilentlyContinue)) { throw "the service did not start; see $log" }

[pscustomobject]@{ ProcessId = $servicePid; Module = $Name; PatchFile = $files[0]; Log = $log; Thumbprint = $cert.Thumbprint }
Write-Host @"
The playground runs: $Name, process $servicePid (its output: $log). From $Path, follow README's "Using the module"
(-ProcessId $servicePid where it says 4711). To stop it:
    Stop-Process -Id $servicePid; Remove-MicropatchTrustedPublisher -Thumbprint $($cert.Thumbprint) -Force
"@
