# The playground (demo/Start-Playground.ps1) and README's "Using the module" followed as written against it.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    Import-Module (Get-ManifestPath) -Force
    $script:dir = New-TestDirectory 'hpt-pester-playground'
    $script:started = Invoke-ChildPwsh -File (Join-Path (Get-RepoRoot) 'demo/Start-Playground.ps1') -ArgumentList '-Path', $dir, '-Name', 'pstplay' `
        -Environment @{ HOTPATCHTOOLS_MACHINE_ROOT = $env:HOTPATCHTOOLS_MACHINE_ROOT }
    $script:servicePid = [int]([regex]::Match(($started -join "`n"), 'pstplay, process (\d+)').Groups[1].Value)
}

AfterAll {
    if ($servicePid) { Stop-Process -Id $servicePid -ErrorAction SilentlyContinue }
    Get-MicropatchTrustedPublisher | Where-Object Subject -eq 'CN=HotpatchTools Playground' | Remove-MicropatchTrustedPublisher -Force
    Remove-Item -Recurse -Force $dir -ErrorAction SilentlyContinue
}

Describe 'The playground' {
    It 'leaves the service running with signed patch files under README''s names' {
        $servicePid | Should -BeGreaterThan 0
        (Get-Process -Id $servicePid).ProcessName | Should -Be 'pstplay'
        (Get-MicropatchSignature -Path (Join-Path $dir 'HP-2026-0001.micropatch.yaml')).Status | Should -Be 'Valid'
        (Get-MicropatchSignature -Path (Join-Path $dir 'patches/HP-2026-0001.micropatch.yaml')).Status | Should -Be 'Valid'
    }

    It 'README''s "Using the module" runs as written against it' {
        $readme = Get-Content -Raw (Join-Path (Get-RepoRoot) 'README.md')
        $block = [regex]::Match($readme, '## Using the module[\s\S]*?```powershell\n([\s\S]*?)```').Groups[1].Value
        $lines = $block -split "`n" | Where-Object { $_ -notmatch '^(dotnet build|Import-Module \./HotpatchTools\.psd1)' }
        $lines.Count | Should -BeGreaterThan 4
        Push-Location $dir
        try {
            # The user answers the confirmation prompts with yes.
            $ConfirmPreference = 'None'
            $out = Invoke-Expression ($lines -join "`n") 6>&1 | Out-String -Width 120
        }
        finally { Pop-Location }
        $out | Should -Match "$servicePid\s+pstplay\s+HP-2026-0001\s+Vulnerable"
        # Objects of a second type in one output are listed, not tabled.
        $out | Should -Match "ProcessId\s+: $servicePid\s+ProcessName\s+: pstplay\s+PatchId\s+: HP-2026-0001\s+Module\s+: pstplay\s+Result\s+: Installed"
        Get-Micropatch -ProcessId $servicePid | Should -BeNullOrEmpty -Because 'the block ends by uninstalling it'
        (Get-MicropatchAuditLog -PatchId HP-2026-0001 -ProcessId $servicePid).Result | Should -Contain 'Installed'
    }
}
