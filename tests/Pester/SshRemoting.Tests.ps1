# SSH remoting with the real pwsh: Debian's sshd on 127.0.0.1 with this pwsh (`pwsh -sshs`) as its powershell
# subsystem (tests/ssh/sshd.sh), and the client cmdlets a fleet admin uses: New-PSSession -HostName,
# Copy-Item -ToSession (the packaged module), Invoke-Command, Enter-PSSession. Needs root (the far side patches
# processes) and openssh-server; .ci/run has both. Elsewhere these tests are skipped, and say why.
BeforeDiscovery {
    $script:canRun = $IsLinux -and ((id -u) -eq '0') -and (Test-Path /usr/sbin/sshd) -and (Get-Command ssh -ErrorAction SilentlyContinue)
}

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    Import-Module (Get-ManifestPath) -Force
    $script:dir = New-TestDirectory 'hpt-pester-ssh'
    $script:sshdir = Join-Path $dir 'sshd'
    $script:started = $false
}

AfterAll {
    if ($script:session) { Remove-PSSession $script:session -ErrorAction SilentlyContinue }
    if ($script:started) { bash (Join-Path (Get-RepoRoot) 'tests/ssh/sshd.sh') stop $sshdir }
    Stop-TestTarget
    Remove-Item -Recurse -Force $dir -ErrorAction SilentlyContinue
}

Describe 'SSH remoting with pwsh -sshs' -Skip:(-not $canRun) {
    BeforeAll {
        $vars = bash (Join-Path (Get-RepoRoot) 'tests/ssh/sshd.sh') start $sshdir (Join-Path $PSHOME 'pwsh.dll')
        if ($LASTEXITCODE -ne 0) { throw "sshd did not start: $vars" }
        $script:started = $true
        $script:port = [int](($vars | Where-Object { $_ -like 'HOTPATCHTOOLS_SSH_PORT=*' }) -replace '.*=')
        $script:key = ($vars | Where-Object { $_ -like 'HOTPATCHTOOLS_SSH_KEY=*' }) -replace '^[^=]*='
        $script:sshOptions = @{ StrictHostKeyChecking = 'no'; UserKnownHostsFile = '/dev/null'; LogLevel = 'ERROR' }
        $script:session = New-PSSession -HostName 127.0.0.1 -Port $port -UserName root -KeyFilePath $key -Options $sshOptions -ErrorAction Stop
        $script:target = Start-TestTarget
        $script:patch = New-TestPatch -Directory $dir -Id 'HP-PESTER-SSH'
        $version = (Import-PowerShellDataFile (Get-ManifestPath)).ModuleVersion
        $script:package = Join-Path (Get-RepoRoot) "artifacts/module/HotpatchTools/$version"
        $script:remoteModules = Join-Path $dir 'remote-modules'
    }

    It 'the far side is a real pwsh over SSH' {
        $far = Invoke-Command -Session $session { [pscustomobject]@{ Edition = $PSVersionTable.PSEdition; Version = $PSVersionTable.PSVersion.ToString(); Pid = $PID; User = [Environment]::UserName; Ssh = $env:SSH_CONNECTION } }
        $far.Edition | Should -Be 'Core'
        $far.Version | Should -Be $PSVersionTable.PSVersion.ToString()
        $far.Pid | Should -Not -Be $PID
        $far.User | Should -Be 'root'
        $far.Ssh | Should -Match '^127\.0\.0\.1 '
    }

    It 'Copy-Item -ToSession deploys the packaged module, which imports there by name' {
        Invoke-Command -Session $session { param($d) $null = New-Item -ItemType Directory -Force $d } -ArgumentList "$remoteModules/HotpatchTools"
        Copy-Item -ToSession $session -Path $package -Destination "$remoteModules/HotpatchTools" -Recurse
        $loaded = Invoke-Command -Session $session {
            param($d)
            $env:PSModulePath = $d + [System.IO.Path]::PathSeparator + $env:PSModulePath
            Import-Module HotpatchTools -ErrorAction Stop
            (Get-Module HotpatchTools).ModuleBase
        } -ArgumentList $remoteModules
        $loaded | Should -BeLike "$remoteModules/HotpatchTools/*"
    }

    It 'Invoke-Command installs a patch file sent as bytes, and the objects come back with their views' {
        $bytes = [System.IO.File]::ReadAllBytes($patch)
        $result = Invoke-Command -Session $session {
            param($bytes, $id)
            $path = Join-Path ([System.IO.Path]::GetTempPath()) 'HP-PESTER-SSH.micropatch.yaml'
            [System.IO.File]::WriteAllBytes($path, $bytes)
            Get-HotpatchTarget -Path $path -ProcessId $id | Where-Object State -eq Vulnerable | Install-Micropatch -AllowUnsigned -Force -PassThru
        } -ArgumentList $bytes, $target.Id
        $result.PSObject.TypeNames[0] | Should -Be 'Deserialized.HotpatchTools.MicropatchResult'
        $result.Result | Should -Be 'Installed'
        $result.PSComputerName | Should -Be '127.0.0.1'
        Invoke-TestTarget $target -Argument 500 | Should -Be -1
        $text = $result | Format-Table | Out-String -Width 80
        $text | Should -Match 'HP-PESTER-SSH'
        $text | Should -Match 'Installed'
    }

    It 'the far side audit log names the SSH client as the connected user' {
        $record = Invoke-Command -Session $session { Get-MicropatchAuditLog -PatchId HP-PESTER-SSH -Last 1 }
        $record.Result | Should -Be 'Installed'
        $record.ConnectedUser | Should -Match 'root.*127\.0\.0\.1'
    }

    It 'errors from the far side name their computer' {
        Invoke-Command -Session $session { Get-Micropatch -ProcessId 999999 } -ErrorVariable remoteErrors -ErrorAction SilentlyContinue
        $remoteErrors.Count | Should -BeGreaterThan 0
        $remoteErrors[0].OriginInfo.PSComputerName | Should -Be '127.0.0.1'
        # The message itself names the computer: a fleet run's errors are read side by side, often as text.
        "$($remoteErrors[0])" | Should -Match ([regex]::Escape("on $([Environment]::MachineName)"))
    }

    It 'Enter-PSSession runs typed commands on the far side' {
        # An interactive pwsh, commands typed on its standard input, as a user at a terminal would.
        $cmd = @(Get-PwshCommand)
        $typed = @(
            "Enter-PSSession -HostName 127.0.0.1 -Port $port -UserName root -KeyFilePath '$key' -Options @{ StrictHostKeyChecking = 'no'; UserKnownHostsFile = '/dev/null'; LogLevel = 'ERROR' }"
            '"far pid $PID"'
            '$env:PSModulePath = ''' + $remoteModules + ''' + [System.IO.Path]::PathSeparator + $env:PSModulePath; Import-Module HotpatchTools'
            "Get-Micropatch -ProcessId $($target.Id) | ForEach-Object { 'far patch ' + `$_.PatchId }"
            # pwsh reading commands from a pipe binds each line to the runspace current when it was read, so after
            # leaving the session nothing more is typed: its end is the end of input.
            'exit'
        ) -join "`n"
        $psi = [System.Diagnostics.ProcessStartInfo]::new($cmd[0])
        foreach ($a in @($cmd | Select-Object -Skip 1) + @('-NoProfile', '-NoLogo', '-Command', '-')) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true; $psi.UseShellExecute = $false
        $p = [System.Diagnostics.Process]::Start($psi)
        $p.StandardInput.Write($typed + "`n")
        $p.StandardInput.Close()
        $out = $p.StandardOutput.ReadToEndAsync(); $err = $p.StandardError.ReadToEndAsync()
        if (-not $p.WaitForExit(120000)) { $p.Kill($true) }
        # Without the terminal's escape sequences: a failure message holding ESC cannot be written to the JUnit report.
        $text = ($out.Result + $err.Result) -replace "`e\[[0-9;?]*[A-Za-z]", ''
        $text = $text -replace "`e", ''
        $text = $text -replace "[\x00-\x08\x0b\x0c\x0e-\x1f]", ''
        $farPid = [regex]::Match($text, 'far pid (\d+)').Groups[1].Value
        $farPid | Should -Not -BeNullOrEmpty -Because $text
        $farPid | Should -Not -Be "$($p.Id)" -Because 'the typed commands ran in the far pwsh, not the one typed into'
        $text | Should -Match 'far patch HP-PESTER-SSH'
    }

    It 'the README''s Linux signing recipe and fleet snippet, as written, install a signed patch over SSH' {
        $readme = Get-Content -Raw (Join-Path (Get-RepoRoot) 'README.md')
        $recipe = [regex]::Match($readme, "On Linux there is no ``Cert:``[\s\S]*?``````sh\n([\s\S]*?)``````\s*``````powershell\n([\s\S]*?)``````")
        $recipe.Success | Should -BeTrue -Because 'the README has the Linux signing recipe'
        $snippet = [regex]::Match($readme, "``````powershell\n(\`$sessions = New-PSSession[\s\S]*?)``````").Groups[1].Value
        $snippet | Should -Match 'Invoke-Command -Session \$sessions'

        $work = Join-Path $dir 'readme'
        $null = New-Item -ItemType Directory -Force $work
        $fleetTarget = Start-TestTarget -Name 'pstssh'
        $null = New-TestPatch -Directory $work -Id 'HP-2026-0001' -Module 'pstssh'
        Push-Location $work
        try {
            bash -c ($recipe.Groups[1].Value -replace '\\\n', ' ') 2>&1 | Out-Null
            $LASTEXITCODE | Should -Be 0
            # The recipe's PowerShell lines: sign here; the publisher is trusted on the far side, as the comment says.
            $sign = ($recipe.Groups[2].Value -split "`n")[0]
            Invoke-Expression $sign
            (Get-MicropatchSignature -Path ./HP-2026-0001.micropatch.yaml).Signer | Should -Match 'CN=Patch Team'
            $cer = [System.IO.File]::ReadAllBytes((Join-Path $work 'team.cer'))
            Invoke-Command -Session $session {
                param($cer)
                $path = Join-Path ([System.IO.Path]::GetTempPath()) "team-$PID.cer"
                [System.IO.File]::WriteAllBytes($path, $cer)
                Add-MicropatchTrustedPublisher -Path $path -Force
            } -ArgumentList (, $cer)

            $sessions = @($session)
            $lines = $snippet -split "`n" | Where-Object { $_ -notmatch '^\$sessions = ' }
            $text = Invoke-Expression ($lines -join "`n") | Out-String -Width 120
            $text | Should -Match 'HP-2026-0001\s+Installed'
            $failed | Should -BeNullOrEmpty
            Invoke-TestTarget $fleetTarget | Should -Be -1
            Invoke-Command -Session $session { param($id) Uninstall-Micropatch -PatchId HP-2026-0001 -ProcessId $id -Force } -ArgumentList $fleetTarget.Id
        }
        finally { Pop-Location; Stop-TestTarget $fleetTarget }
    }

    It 'the fleet script gives one error per computer it cannot reach, in the caller''s -ErrorVariable' {
        $fleet = Join-Path (Get-RepoRoot) 'samples/fleet/Invoke-HotpatchFleet.ps1'
        $listed = & $fleet -HostName 127.0.0.1, '127.0.0.1:1' -UserName root -KeyFilePath $key -Port $port -SSHOption $sshOptions -Action List -Module (Join-Path $package "HotpatchTools.psd1") `
            -ErrorVariable fleetErrors -ErrorAction SilentlyContinue
        $fleetErrors.Count | Should -Be 1 -Because ($fleetErrors | ForEach-Object { "$($_.FullyQualifiedErrorId) $($_.TargetObject): $_" } | Out-String)
        $fleetErrors[0].FullyQualifiedErrorId | Should -BeLike 'ComputerUnreachable*'
        $fleetErrors[0].TargetObject | Should -Be '127.0.0.1'
        @($listed | Where-Object PatchId -eq 'HP-PESTER-SSH').Count | Should -Be 1
    }

    It 'Invoke-Command uninstalls it again' {
        $removed = Invoke-Command -Session $session { param($id) Uninstall-Micropatch -PatchId HP-PESTER-SSH -ProcessId $id -Force -PassThru } -ArgumentList $target.Id
        $removed.Result | Should -Be 'Removed'
        Invoke-TestTarget $target -Argument 500 | Should -Be 1501
    }
}
