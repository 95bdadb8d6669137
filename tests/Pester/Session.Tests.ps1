# What a new user meets in a real session (issue 15's list): paths and wildcards, silent no-ops, misleading
# messages, unattended runs, progress. Each against live targets.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    Import-Module (Get-ManifestPath) -Force
    $script:dir = New-TestDirectory 'hpt-pester-session'
    # Module names of this file's own, so machine-wide installs reach only these targets.
    $script:a = Start-TestTarget -Name 'pstsessa'
    $script:b = Start-TestTarget -Name 'pstsessb'
    $script:c1 = Start-TestTarget -Name 'pstsessc'
    $script:c2 = Start-TestTarget -Name 'pstsessc'
}

AfterAll {
    foreach ($t in $a, $b, $c1, $c2) { Get-Micropatch -ProcessId $t.Id -ErrorAction SilentlyContinue | Uninstall-Micropatch -Force -ErrorAction SilentlyContinue }
    Stop-TestTarget
    Remove-Item -Recurse -Force $dir -ErrorAction SilentlyContinue
}

Describe 'Install-Micropatch -Path and -LiteralPath' {
    BeforeAll {
        $script:wild = Join-Path $dir 'wild'
        $null = New-TestPatch -Directory $wild -Id 'HP-WILD-A' -Module 'pstsessa'
        $null = New-TestPatch -Directory $wild -Id 'HP-WILD-B' -Module 'pstsessb'
    }
    AfterEach {
        foreach ($t in $a, $b) { Get-Micropatch -ProcessId $t.Id | Uninstall-Micropatch -Force }
    }

    It 'a wildcard installs every matching file' {
        $r = Install-Micropatch -Path (Join-Path $wild 'HP-WILD-*.micropatch.yaml') -AllowUnsigned -Force -PassThru
        ($r.PatchId | Sort-Object) | Should -Be @('HP-WILD-A', 'HP-WILD-B')
        Invoke-TestTarget $a | Should -Be -1
        Invoke-TestTarget $b | Should -Be -1
    }

    It 'several paths install each' {
        $r = Install-Micropatch -Path (Join-Path $wild 'HP-WILD-A.micropatch.yaml'), (Join-Path $wild 'HP-WILD-B.micropatch.yaml') -AllowUnsigned -Force -PassThru
        ($r.PatchId | Sort-Object) | Should -Be @('HP-WILD-A', 'HP-WILD-B')
    }

    It '-LiteralPath takes a name with wildcard characters as it is' {
        $odd = Join-Path $dir 'odd[1]'
        $file = New-TestPatch -Directory $odd -Id 'HP-WILD-A'
        $file = Join-Path $odd 'HP-WILD-A[x].micropatch.yaml'
        Move-Item -LiteralPath (Join-Path $odd 'HP-WILD-A.micropatch.yaml') -Destination $file
        (Get-Content -LiteralPath $file -Raw) -replace 'module: psttarget', 'module: pstsessa' | Set-Content -LiteralPath $file -NoNewline
        $r = Install-Micropatch -LiteralPath $file -ProcessId $a.Id -AllowUnsigned -Force -PassThru
        $r.Result | Should -Be 'Installed'
    }

    It 'a wildcard that matches no file is a PatchFileNotFound error naming the path, and $? is false' {
        Install-Micropatch -Path (Join-Path $wild 'HP-NONE-*.micropatch.yaml') -AllowUnsigned -Force -ErrorVariable e -ErrorAction SilentlyContinue
        $ok = $?
        $ok | Should -BeFalse
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'PatchFileNotFound*'
        $e[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        "$($e[0])" | Should -Match 'HP-NONE-\*'
        # The other paths of the same command still run.
        Get-HotpatchTarget -Path (Join-Path $wild 'HP-NONE-*.micropatch.yaml'), (Join-Path $wild 'HP-WILD-A.micropatch.yaml') -ProcessId $a.Id -ErrorVariable e2 -ErrorAction SilentlyContinue |
            ForEach-Object State | Should -Be 'Vulnerable'
        $e2[0].FullyQualifiedErrorId | Should -BeLike 'PatchFileNotFound*'
    }

    It 'a path on a drive that does not exist, or in a provider without files, is an error of its own and the other paths still run' {
        $good = Join-Path $wild 'HP-WILD-A.micropatch.yaml'
        $rows = Get-HotpatchTarget -Path 'nosuchdrive:\HP-*.micropatch.yaml', 'Env:HOM*', $good -ProcessId $a.Id -ErrorVariable e -ErrorAction SilentlyContinue
        $rows.PatchId | Should -Be 'HP-WILD-A'
        $e.Count | Should -Be 2
        $e[0].FullyQualifiedErrorId | Should -BeLike 'PatchFileNotFound*'
        "$($e[0])" | Should -Match 'nosuchdrive'
        $e[1].FullyQualifiedErrorId | Should -BeLike 'PathNotFileSystem*'
        "$($e[1])" | Should -Match 'is not a file system path'
    }

    It 'a -LiteralPath that names no file is PatchFileNotFound (ObjectNotFound), not an invalid patch file' {
        Install-Micropatch -LiteralPath (Join-Path $wild 'HP-NONE.micropatch.yaml') -AllowUnsigned -Force -ErrorVariable e -ErrorAction SilentlyContinue
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'PatchFileNotFound*'
        $e[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        "$($e[0])" | Should -Match 'HP-NONE\.micropatch\.yaml'
    }

    It 'a patch''s detached signature handed over with it (Get-ChildItem of the folder) is named as a signature, not parsed as a patch' {
        $signed = Join-Path $dir 'signed'
        $file = New-TestPatch -Directory $signed -Id 'HP-SIGNED' -Module 'pstsessa'
        [System.IO.File]::WriteAllBytes("$file.sig", [byte[]](0x30, 0x82, 0xff, 0x01))
        $rows = Get-ChildItem $signed | Get-HotpatchTarget -ProcessId $a.Id -ErrorVariable e -ErrorAction SilentlyContinue
        $rows.PatchId | Should -Be 'HP-SIGNED'
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'PatchFileIsSignature*'
        $e[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        "$($e[0])" | Should -Match ('is the signature of ' + [regex]::Escape($file) + ', not a micropatch file')
        "$($e[0])" | Should -Not -Match 'UTF-8'
        Get-MicropatchSignature -Path (Join-Path $signed '*') -ErrorVariable e2 -ErrorAction SilentlyContinue | ForEach-Object Path | Should -Be $file
        $e2[0].FullyQualifiedErrorId | Should -BeLike 'PatchFileIsSignature*'
    }

    It 'a file named with wildcard characters, piped from Get-ChildItem to a cmdlet with only -Path, is that file, not the files the pattern matches' {
        $br = Join-Path $dir 'brackets'
        $null = New-TestPatch -Directory $br -Id 'HP-BR1' -Module 'pstsessa'
        $null = New-TestPatch -Directory $br -Id 'HP-BRACKET' -Module 'pstsessa'
        $odd = Join-Path $br 'HP-BR[1].micropatch.yaml'
        Move-Item -LiteralPath (Join-Path $br 'HP-BRACKET.micropatch.yaml') -Destination $odd
        # "HP-BR[1]" as a pattern matches HP-BR1.micropatch.yaml, the other patch.
        (Get-Item -LiteralPath $odd | Get-MicropatchSite -ProcessId $a.Id).PatchId | Should -Be 'HP-BRACKET'
        (Get-Item -LiteralPath $odd | Get-MicropatchSignature).Path | Should -Be $odd
        (Get-Item -LiteralPath $odd | Test-Micropatch -ModulePath (Get-TestTargetPath)).PatchId | Should -Be 'HP-BRACKET'
        # A name with * is still a pattern: it takes every match, that file among them.
        $star = Join-Path $dir 'star'
        $null = New-TestPatch -Directory $star -Id 'HP-S1' -Module 'pstsessa'
        $null = New-TestPatch -Directory $star -Id 'HP-S2' -Module 'pstsessa'
        Copy-Item -LiteralPath (Join-Path $star 'HP-S1.micropatch.yaml') -Destination (Join-Path $star 'HP-S*.micropatch.yaml')
        @(Get-MicropatchSignature -Path (Join-Path $star 'HP-S*.micropatch.yaml')).Count | Should -Be 3
        # A pattern that names no file as it is still expands.
        (Get-MicropatchSignature -Path (Join-Path $br 'HP-BR?.micropatch.yaml')).Path | Should -Be (Join-Path $br 'HP-BR1.micropatch.yaml')
    }

    It 'a folder given as -Path is named as a folder, not "access denied"' {
        Install-Micropatch -Path $wild -AllowUnsigned -Force -ErrorVariable e -ErrorAction SilentlyContinue
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'PatchFileIsFolder*'
        "$($e[0])" | Should -Match 'is a folder'
        "$($e[0])" | Should -Not -Match 'denied'
    }
}

Describe 'Patch files' {
    It 'code: | followed by only blank or whitespace lines is an empty block: the patch only detours' {
        # New-TestPatch indents every code line: an empty line becomes a line of spaces, then one with fewer.
        $file = New-TestPatch -Directory (Join-Path $dir 'empty') -Id 'HP-EMPTY-CODE' -Module 'pstsessa' -Code "`n  `n"
        (Get-Content $file -Raw) | Should -Match "code: \|\n      \n"
        $r = Install-Micropatch -Path $file -ProcessId $a.Id -AllowUnsigned -Force -PassThru
        $r.Result | Should -Be 'Installed'
        Invoke-TestTarget $a | Should -Be 1501
        (Get-MicropatchSite -Path $file -ProcessId $a.Id).State | Should -Be 'Patched'
        Uninstall-Micropatch -PatchId HP-EMPTY-CODE -ProcessId $a.Id -Force
    }
}

Describe 'No silent no-ops' {
    It 'a machine-wide install where every process is another build is an error with counts, and $? is false' {
        $file = New-TestPatch -Directory (Join-Path $dir 'other') -Id 'HP-OTHER-BUILD' -Module 'pstsessc' -Expect 'ff ff ff ff ff ff'
        Install-Micropatch -Path $file -AllowUnsigned -Force -ErrorVariable e -ErrorAction SilentlyContinue
        $ok = $?
        $ok | Should -BeFalse
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'NothingInstalled*'
        "$($e[0])" | Should -Match 'of the 2 process\(es\) that load pstsessc, installed in 0, already installed in 0, not matching \(another build\) in 2'
    }

    It 'a typo''d symbol is not silent either' {
        $file = New-TestPatch -Directory (Join-Path $dir 'typo') -Id 'HP-TYPO' -Module 'pstsessc' -At 'tripel'
        Install-Micropatch -Path $file -AllowUnsigned -Force -ErrorVariable e -ErrorAction SilentlyContinue -WarningVariable w -WarningAction SilentlyContinue
        ($e.Count + $w.Count) | Should -BeGreaterThan 0
        (($e | ForEach-Object { "$_" }) + @($w | ForEach-Object Message)) -join "`n" | Should -Match 'tripel'
    }

    It 'some processes of another build give a warning with the counts' {
        $file = New-TestPatch -Directory (Join-Path $dir 'some') -Id 'HP-SOME' -Module 'pstsessc'
        # One of the two already holds another patch at the same site: its bytes are no longer the expected ones.
        $null = Install-Micropatch -Path (New-TestPatch -Directory (Join-Path $dir 'first') -Id 'HP-FIRST' -Module 'pstsessc') -ProcessId $c1.Id -AllowUnsigned -Force
        $r = Install-Micropatch -Path $file -AllowUnsigned -Force -PassThru -WarningVariable w -WarningAction SilentlyContinue
        $r.ProcessId | Should -Be $c2.Id
        Get-Micropatch -ProcessId $c1.Id, $c2.Id | Uninstall-Micropatch -Force
        # Processes nobody may read (as pid 1 here) are counted in a warning of their own.
        $counts = @($w | Where-Object Message -Match 'installed in')
        $counts.Count | Should -Be 1
        $counts[0].Message | Should -Match 'installed in 1, already installed in 0, not matching \(another build\) in 1'
    }

    It 'installing twice says it was already installed, as an error, not like a success' {
        $file = New-TestPatch -Directory (Join-Path $dir 'twice') -Id 'HP-TWICE' -Module 'pstsessa'
        $null = Install-Micropatch -Path $file -ProcessId $a.Id -AllowUnsigned -Force
        Install-Micropatch -Path $file -ProcessId $a.Id -AllowUnsigned -Force -ErrorVariable e -ErrorAction SilentlyContinue
        $e[0].FullyQualifiedErrorId | Should -BeLike 'AlreadyInstalled*'
        "$($e[0])" | Should -Match 'already installed there, nothing was changed'
        Uninstall-Micropatch -PatchId HP-TWICE -ProcessId $a.Id -Force
    }
}

Describe 'Messages that say what to do' {
    It 'as root, a process the kernel protects does not say "run as root"' {
        $file = New-TestPatch -Directory (Join-Path $dir 'pid1') -Id 'HP-PID1'
        $row = Get-HotpatchTarget -Path $file -ProcessId 1 -ErrorAction SilentlyContinue
        if ((id -u) -ne '0' -or $row.State -ne 'AccessDenied') { Set-ItResult -Skipped -Because 'pid 1 is readable here, or this is not root' ; return }
        $row.Reason | Should -Not -Match 'run as root'
        $row.Reason | Should -Match 'even to root'
    }

    It 'an assembler typo is one error naming the file, not a state of each process' {
        $file = New-TestPatch -Directory (Join-Path $dir 'asm') -Id 'HP-ASM' -Module 'pstsessc' -Code "cmp edi, 100`njbe resume`nmvo eax, -1`nret"
        Install-Micropatch -Path $file -AllowUnsigned -Force -ErrorVariable e -ErrorAction SilentlyContinue
        $asm = @($e | Where-Object { $_.FullyQualifiedErrorId -like 'AssemblyError*' })
        $asm.Count | Should -Be 1
        $asm[0].TargetObject | Should -Be $file
        "$($asm[0])" | Should -Match 'does not assemble'
    }

    It 'a function too small for the jump is not told to extend expect' {
        $file = New-TestPatch -Directory (Join-Path $dir 'tiny') -Id 'HP-TINY' -Module 'pstsessa' -At 'tiny' -Expect '31 c0 c3' -Code 'ret'
        Install-Micropatch -Path $file -ProcessId $a.Id -AllowUnsigned -Force -ErrorVariable e -ErrorAction SilentlyContinue
        "$($e[0])" | Should -Not -Match 'extend expect'
        "$($e[0])" | Should -Match 'too few for the 5-byte jump'
    }

    It 'an unattended run without -Force says to use -Force' {
        $file = New-TestPatch -Directory (Join-Path $dir 'unattended') -Id 'HP-UNATTENDED' -Module 'pstsessa'
        $script = Join-Path $dir 'unattended.ps1'
        @'
param($Manifest, $File, $TargetId)
Import-Module $Manifest
try { Install-Micropatch -Path $File -ProcessId $TargetId -AllowUnsigned -ErrorAction Stop; 'went on' }
catch { 'stopped ' + $_.FullyQualifiedErrorId + ' ' + $_.Exception.Message }
'@ | Set-Content $script
        $out = Invoke-ChildPwsh -File $script -ArgumentList (Get-ManifestPath), $file, $a.Id -Environment @{ HOTPATCHTOOLS_MACHINE_ROOT = $env:HOTPATCHTOOLS_MACHINE_ROOT }
        ($out -join "`n") | Should -Match 'stopped ConfirmationNotPossible'
        ($out -join "`n") | Should -Match '-Force'
        Invoke-TestTarget $a | Should -Be 1501
    }
}

Describe 'Uninstall-Micropatch' {
    It '-PatchId takes wildcards' {
        $null = Install-Micropatch -Path (New-TestPatch -Directory (Join-Path $dir 'uwild') -Id 'HP-UWILD-1' -Module 'pstsessa') -ProcessId $a.Id -AllowUnsigned -Force
        $r = Uninstall-Micropatch -PatchId 'HP-UWILD-*' -ProcessId $a.Id -Force -PassThru
        $r.PatchId | Should -Be 'HP-UWILD-1'
        Invoke-TestTarget $a | Should -Be 1501
    }

    It 'machine-wide, an id installed nowhere is named in a warning even when another id of the command is removed' {
        $null = Install-Micropatch -Path (New-TestPatch -Directory (Join-Path $dir 'unone') -Id 'HP-UNONE-1' -Module 'pstsessa') -ProcessId $a.Id -AllowUnsigned -Force
        $r = Uninstall-Micropatch -PatchId 'HP-UNONE-1', 'HP-UNONE-NOWHERE', 'HP-UNONE-Z*' -Force -PassThru -WarningVariable w -WarningAction SilentlyContinue
        $r.PatchId | Should -Be 'HP-UNONE-1'
        Invoke-TestTarget $a | Should -Be 1501
        $named = @($w | Where-Object Message -Match 'not installed in any running process')
        $named.Count | Should -Be 1
        $named[0].Message | Should -Be 'Patch HP-UNONE-NOWHERE, HP-UNONE-Z* is not installed in any running process.'
    }

    It 'callers still inside the patch code in many processes give one summary warning, details under -Verbose' {
        # The patch code waits forever (pause in a loop): a thread that called triple stays inside the cave.
        $d1 = Start-TestTarget -Name 'pstsessd'
        $d2 = Start-TestTarget -Name 'pstsessd'
        try {
            $file = New-TestPatch -Directory (Join-Path $dir 'stale') -Id 'HP-STALE' -Module 'pstsessd' -Code "again:`nmov eax, 34`nsyscall`njmp again"
            $installed = Install-Micropatch -Path $file -AllowUnsigned -Force -PassThru
            $installed.Count | Should -Be 2
            foreach ($d in $d1, $d2) { $d.StandardInput.WriteLine('hammer 1'); $d.StandardInput.Flush(); $d.StandardOutput.ReadLine() | Should -Be 'ok' }
            Start-Sleep -Milliseconds 200
            $r = Uninstall-Micropatch -PatchId HP-STALE -Force -PassThru -WarningVariable w -WarningAction SilentlyContinue -Verbose 4>&1 | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] -or $_.Message -like 'pid *' }
            @($r | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Count | Should -Be 2
            @($r | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }).Result | Should -Be @('Removed', 'Removed')
            $w.Count | Should -Be 1
            $w[0].Message | Should -Match '^2 process\(es\) may still have a thread returning into the patch'
        }
        finally { Stop-TestTarget $d1, $d2 }
    }
}

Describe 'Progress' {
    It 'a machine-wide install reports progress while it installs, not only while it searches' {
        $file = New-TestPatch -Directory (Join-Path $dir 'progress') -Id 'HP-PROGRESS' -Module 'pstsessc'
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript('param($m, $f) Import-Module $m; Install-Micropatch -Path $f -AllowUnsigned -Force').AddArgument((Get-ManifestPath)).AddArgument($file).Invoke()
            $activities = $ps.Streams.Progress | ForEach-Object Activity | Sort-Object -Unique
            $activities | Should -Contain 'Installing micropatches'
        }
        finally { $ps.Dispose() }
        Invoke-TestTarget $c1 | Should -Be -1
        Invoke-TestTarget $c2 | Should -Be -1
        Get-Micropatch -ProcessId $c1.Id, $c2.Id | Uninstall-Micropatch -Force
    }
}

Describe 'Test-Micropatch' {
    It 'a -ModulePath that names nothing is one ModuleFileNotFound error, without a warning that blames the module files' {
        $file = New-TestPatch -Directory (Join-Path $dir 'offline') -Id 'HP-OFFLINE' -Module 'pstsessa'
        $r = Test-Micropatch -Path $file -ModulePath (Join-Path $dir 'no-such-build.so') -ErrorVariable e -ErrorAction SilentlyContinue -WarningVariable w -WarningAction SilentlyContinue
        $r | Should -BeNullOrEmpty
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'ModuleFileNotFound*'
        "$($e[0])" | Should -Match 'no-such-build\.so'
        $w.Count | Should -Be 0
    }
}

Describe 'New-Micropatch' {
    It 'a -ModulePath that is a folder is called a folder, not a file that does not exist' {
        New-Micropatch -Id HP-NEW-FOLDER -ModulePath $dir -At triple -OutputPath (Join-Path $dir 'new-folder.micropatch.yaml') -ErrorVariable e -ErrorAction SilentlyContinue
        $e.Count | Should -Be 1
        "$($e[0])" | Should -Match 'is a folder, not a module file'
        Test-Path (Join-Path $dir 'new-folder.micropatch.yaml') | Should -BeFalse
    }
}

Describe 'Get-MicropatchAuditLog' {
    It '-WhatIf previews of installs and uninstalls that would be refused leave no audit record' {
        $file = New-TestPatch -Directory (Join-Path $dir 'whatif-audit') -Id 'HP-WHATIF-AUDIT' -Module 'pstsessa'
        Install-Micropatch -Path $file -ProcessId $a.Id -WhatIf -ErrorAction SilentlyContinue             # not signed
        Install-Micropatch -Path $file -ProcessId 999999 -AllowUnsigned -WhatIf -ErrorAction SilentlyContinue # no such process
        Uninstall-Micropatch -PatchId 'HP-WHATIF-AUDIT' -ProcessId $a.Id -WhatIf -ErrorAction SilentlyContinue # not installed
        Get-MicropatchAuditLog -PatchId 'HP-WHATIF-AUDIT' | Should -BeNullOrEmpty
        # Without -WhatIf the same refusal is recorded.
        Install-Micropatch -Path $file -ProcessId $a.Id -Force -ErrorAction SilentlyContinue
        (Get-MicropatchAuditLog -PatchId 'HP-WHATIF-AUDIT').ErrorId | Should -Be 'NotSigned'
    }

    It '-Path that is a folder says so, once, not that it does not exist' {
        $folder = Join-Path $dir 'audit-folder'
        $null = New-Item -ItemType Directory -Force -Path $folder
        1, 2 | ForEach-Object { [pscustomobject]@{ PatchId = "HP-$_" } } | Get-MicropatchAuditLog -Path $folder -ErrorVariable e -ErrorAction SilentlyContinue
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'AuditLogIsFolder*'
        "$($e[0])" | Should -Match 'is a folder, not an audit file'
    }

    It 'objects piped in select records that come out once each, oldest first, and -Last takes the newest of them all' {
        $log = Join-Path $dir 'audit-pipe.jsonl'
        $lines = foreach ($r in @(('HP-LOG-A', 1), ('HP-LOG-B', 2), ('HP-LOG-A', 3), ('HP-LOG-B', 4), ('HP-LOG-C', 5))) {
            '{"time":"2026-01-01T00:00:0' + $r[1] + 'Z","user":"root","host":"h","action":"Install","result":"Installed","patchId":"' + $r[0] + '","processId":4711,"processName":"svc","module":"svc"}'
        }
        [System.IO.File]::WriteAllText($log, ($lines -join "`n") + "`n")
        $in = [pscustomobject]@{ PatchId = 'HP-LOG-A'; ProcessId = 4711 }, [pscustomobject]@{ PatchId = 'HP-LOG-B'; ProcessId = 4711 }, [pscustomobject]@{ PatchId = 'HP-LOG-A'; ProcessId = 4711 }
        $all = $in | Get-MicropatchAuditLog -Path $log
        @($all | ForEach-Object { $_.Time.ToUniversalTime().Second }) | Should -Be @(1, 2, 3, 4)
        $newest = $in | Get-MicropatchAuditLog -Path $log -Last 2
        @($newest | ForEach-Object { $_.Time.ToUniversalTime().Second }) | Should -Be @(3, 4)
    }
}
