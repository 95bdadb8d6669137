# The packaged module as an admin installs it: published to a local file repository, installed by name with
# PSResourceGet, imported by name, then updated to a newer version. A child pwsh with a HOME of its own keeps
# the repository registration and the CurrentUser module folder out of the machine's profile.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    $script:dir = New-TestDirectory 'hpt-pester-psresource'
    $version = (Import-PowerShellDataFile (Get-ManifestPath)).ModuleVersion
    $script:package = Join-Path (Get-RepoRoot) "artifacts/module/HotpatchTools/$version"
    $script:version = $version
    # The next version: the same package with a higher ModuleVersion, as a release would ship it.
    $next = [version]$version
    $script:nextVersion = '{0}.{1}.{2}' -f $next.Major, $next.Minor, ($next.Build + 1)
    $script:nextPackage = Join-Path $dir "next/HotpatchTools"
    Copy-Item -Recurse $package $nextPackage
    $manifest = Join-Path $nextPackage 'HotpatchTools.psd1'
    (Get-Content -Raw $manifest) -replace "ModuleVersion\s*=\s*'[^']*'", "ModuleVersion        = '$($script:nextVersion)'" | Set-Content -NoNewline $manifest
    $script:target = Start-TestTarget
    $script:patch = New-TestPatch -Directory $dir -Id 'HP-PESTER-PSRG'
    $script:script = Join-Path $dir 'psresource.ps1'
    @'
param($Repo, $Package, $NextPackage, $Patch, $TargetId)
$ErrorActionPreference = 'Stop'
Register-PSResourceRepository -Name HptLocal -Uri $Repo -Trusted
Publish-PSResource -Path $Package -Repository HptLocal
"published " + ((Get-ChildItem $Repo -Filter *.nupkg).Name -join ',')
Install-PSResource -Name HotpatchTools -Repository HptLocal -Scope CurrentUser -TrustRepository
Import-Module HotpatchTools
"imported " + (Get-Module HotpatchTools).Version + " from " + (Get-Module HotpatchTools).ModuleBase
"state " + (Get-HotpatchTarget -Path $Patch -ProcessId $TargetId).State
"installed " + (Install-Micropatch -Path $Patch -ProcessId $TargetId -AllowUnsigned -Force -PassThru).Result
"removed " + (Uninstall-Micropatch -PatchId HP-PESTER-PSRG -ProcessId $TargetId -Force -PassThru).Result
Publish-PSResource -Path $NextPackage -Repository HptLocal
Update-PSResource -Name HotpatchTools -Repository HptLocal -Scope CurrentUser -TrustRepository
"available " + ((Get-Module -ListAvailable HotpatchTools | Sort-Object Version -Descending).Version -join ',')
'@ | Set-Content $script
    $script:userHome = Join-Path $dir 'home'
    $null = New-Item -ItemType Directory (Join-Path $dir 'repo'), $userHome
    $script:lines = Invoke-ChildPwsh -File $script -Environment @{ HOME = $userHome; XDG_DATA_HOME = "$userHome/.local/share"; XDG_CONFIG_HOME = "$userHome/.config"; XDG_CACHE_HOME = "$userHome/.cache"; PSModulePath = '' } `
        -ArgumentList (Join-Path $dir 'repo'), $package, $nextPackage, $patch, $target.Id
    # A fresh pwsh in the same HOME imports by name: it must get the newest installed version.
    $script:fresh = Join-Path $dir 'fresh.ps1'
    'Import-Module HotpatchTools -ErrorAction Stop; "fresh " + (Get-Module HotpatchTools).Version + " " + (Get-Command Install-Micropatch).Source' | Set-Content $fresh
    $script:freshLines = Invoke-ChildPwsh -File $fresh -Environment @{ HOME = $userHome; XDG_DATA_HOME = "$userHome/.local/share"; XDG_CONFIG_HOME = "$userHome/.config"; XDG_CACHE_HOME = "$userHome/.cache"; PSModulePath = '' }
}

AfterAll {
    Stop-TestTarget
    Remove-Item -Recurse -Force $dir -ErrorAction SilentlyContinue
}

Describe 'PSResourceGet' {
    It 'publishes the packaged module to a local file repository' {
        $lines | Should -Contain "published HotpatchTools.$version.nupkg"
    }

    It 'Install-PSResource puts it where Import-Module finds it by name' {
        $imported = $lines | Where-Object { $_ -like 'imported *' }
        $imported | Should -Be "imported $version from $(Join-Path $userHome ".local/share/powershell/Modules/HotpatchTools/$version")"
    }

    It 'the installed module patches a live target' {
        $lines | Should -Contain 'state Vulnerable'
        $lines | Should -Contain 'installed Installed'
        $lines | Should -Contain 'removed Removed'
        Invoke-TestTarget $target -Argument 500 | Should -Be 1501
    }

    It 'Update-PSResource installs the newer version beside the old one' {
        $lines | Should -Contain "available $nextVersion,$version"
    }

    It 'a new session imports the newest version by name' {
        $freshLines | Should -Be "fresh $nextVersion HotpatchTools"
    }
}
