<#
.SYNOPSIS
    Builds HotpatchTools and, with -Test, runs its tests; with -Package, lays out the module for PSModulePath.
.DESCRIPTION
    Runs in the repository's own pwsh (a local .NET tool, .config/dotnet-tools.json):
        dotnet tool restore && dotnet pwsh ./build.ps1 -Test
    Without pwsh the plain path is the same: `dotnet build -c Release` at the repository root, after which
    `Import-Module ./HotpatchTools.psd1` works.
    -Test runs the xunit tests (`dotnet test`, results in TestResults/xunit.trx) and then the Pester suite in
    tests/Pester in this pwsh (Pester 5.9.1 restored from NuGet by tests/Pester/Pester.Download.csproj; results
    in TestResults/pester.xml, JUnit XML) and prints one count line for each. -Pester runs only the Pester suite,
    -Xunit only xunit.
    -Package runs `dotnet build src/HotpatchTools -c <Configuration> -t:Package`, which writes
    artifacts/module/HotpatchTools/<version>/ (see src/HotpatchTools/Package.targets).
#>
[CmdletBinding()]
param(
    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',
    [switch] $Test,
    [switch] $Package,
    # With -Test: only the xunit tests, or only the Pester suite (-PesterPath narrows it to files or folders).
    [switch] $Xunit,
    [switch] $Pester,
    [string[]] $PesterPath = @(),
    # Where the result files go (TestResults at the repository root by default).
    [string] $ResultsDirectory = ''
)
$ErrorActionPreference = 'Stop'
Push-Location $PSScriptRoot
try {
    dotnet build -c $Configuration
    if ($LASTEXITCODE -ne 0) { throw "dotnet build failed ($LASTEXITCODE)" }
    if ($Package -or ($Test -and -not $Xunit)) {
        # The Pester suite installs the packaged module by name, so it needs the package too.
        dotnet build src/HotpatchTools -c $Configuration -t:Package --nologo --verbosity quiet
        if ($LASTEXITCODE -ne 0) { throw "packaging failed ($LASTEXITCODE)" }
    }
    if ($Test) {
        if (-not $ResultsDirectory) { $ResultsDirectory = Join-Path $PSScriptRoot 'TestResults' }
        $null = New-Item -ItemType Directory -Path $ResultsDirectory -Force
        $failures = @()
        if (-not $Pester) {
            dotnet test -c $Configuration --no-build --logger 'trx;LogFileName=xunit.trx' --results-directory $ResultsDirectory
            $xunitExit = $LASTEXITCODE
            $counters = Select-String -Path (Join-Path $ResultsDirectory 'xunit.trx') -Pattern '<Counters [^>]*>' -ErrorAction SilentlyContinue | Select-Object -First 1
            $passed = if ($counters -and $counters.Line -match ' passed="(\d+)"') { [int] $Matches[1] } else { 0 }
            $failed = if ($counters -and $counters.Line -match ' failed="(\d+)"') { [int] $Matches[1] } else { 0 }
            # A run that crashed or never started must not look green.
            if ($xunitExit -ne 0 -and $failed -eq 0) { $failed = 1 }
            Write-Host "xunit: $passed passed, $failed failed"
            if ($failed -gt 0) { $failures += 'xunit' }
        }
        if (-not $Xunit) {
            dotnet restore tests/Pester/Pester.Download.csproj --verbosity quiet
            if ($LASTEXITCODE -ne 0) { throw "restoring Pester failed ($LASTEXITCODE)" }
            Import-Module (Join-Path $PSScriptRoot 'tests/Pester/packages/pester/5.9.1/tools/Pester.psd1') -Force
            $config = New-PesterConfiguration
            $config.Run.Path = if ($PesterPath) { $PesterPath } else { Join-Path $PSScriptRoot 'tests/Pester' }
            $config.Run.PassThru = $true
            $config.Output.Verbosity = 'Detailed'
            $config.TestResult.Enabled = $true
            $config.TestResult.OutputFormat = 'JUnitXml'
            $config.TestResult.OutputPath = Join-Path $ResultsDirectory 'pester.xml'
            # The suite's trust store, catalog and audit log: a folder of this run's, never the machine's.
            $machineRoot = $env:HOTPATCHTOOLS_MACHINE_ROOT
            $env:HOTPATCHTOOLS_MACHINE_ROOT = (New-Item -ItemType Directory -Force -Path (Join-Path ([System.IO.Path]::GetTempPath()) "hpt-pester-machine-$PID")).FullName
            try { $run = Invoke-Pester -Configuration $config }
            finally {
                Remove-Item -Recurse -Force $env:HOTPATCHTOOLS_MACHINE_ROOT -ErrorAction SilentlyContinue
                $env:HOTPATCHTOOLS_MACHINE_ROOT = $machineRoot
            }
            $failed = $run.FailedCount + $run.FailedBlocksCount + $run.FailedContainersCount
            Write-Host "Pester: $($run.PassedCount) passed, $failed failed"
            if ($failed -gt 0 -or $run.PassedCount -eq 0) { $failures += 'Pester' }
        }
        if ($failures) { throw "tests failed: $($failures -join ', ')" }
    }
}
finally {
    Pop-Location
}
