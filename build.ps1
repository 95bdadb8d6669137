<#
.SYNOPSIS
    Builds HotpatchTools and, with -Test, runs its tests.
.DESCRIPTION
    For people with pwsh. Without it the plain path is the same: `dotnet build -c Release`
    at the repository root, after which `Import-Module ./HotpatchTools.psd1` works.
#>
[CmdletBinding()]
param(
    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',
    [switch] $Test
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
}
finally {
    Pop-Location
}
