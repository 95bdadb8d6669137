<#
.SYNOPSIS
    Builds HotpatchTools and, with -Test, runs its tests; with -Package, lays out the module for PSModulePath.
.DESCRIPTION
    For people with pwsh. Without it the plain path is the same: `dotnet build -c Release`
    at the repository root, after which `Import-Module ./HotpatchTools.psd1` works.
    -Package runs `dotnet build src/HotpatchTools -c <Configuration> -t:Package`, which writes
    artifacts/module/HotpatchTools/<version>/ (see src/HotpatchTools/Package.targets).
#>
[CmdletBinding()]
param(
    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',
    [switch] $Test,
    [switch] $Package
)
$ErrorActionPreference = 'Stop'
Push-Location $PSScriptRoot
try {
    dotnet build -c $Configuration
    if ($LASTEXITCODE -ne 0) { throw "dotnet build failed ($LASTEXITCODE)" }
    if ($Test) {
        dotnet test -c $Configuration
        if ($LASTEXITCODE -ne 0) { throw "tests failed ($LASTEXITCODE)" }
    }
    if ($Package) {
        dotnet build src/HotpatchTools -c $Configuration -t:Package
        if ($LASTEXITCODE -ne 0) { throw "packaging failed ($LASTEXITCODE)" }
    }
}
finally {
    Pop-Location
}
