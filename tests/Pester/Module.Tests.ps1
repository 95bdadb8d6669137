# The module as a user meets it in a real pwsh: table views at 80 and 120 columns, serialization of every
# output type, pipelines between the cmdlets, error behaviour, completion and thread jobs, against live targets.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    Import-Module (Get-ManifestPath) -Force
    $script:dir = New-TestDirectory 'hpt-pester-module'
    $script:target = Start-TestTarget
    $script:patch = New-TestPatch -Directory $dir -Id 'HP-PESTER-0001'
    # One of each output type, from one live target: a target row, an install, a listing, a site, a module,
    # the audit records, a signature, a publisher, a catalog entry, a sync result and a compliance summary.
    $script:targetRow = Get-HotpatchTarget -Path $patch -ProcessId $target.Id
    $script:install = Install-Micropatch -Path $patch -ProcessId $target.Id -AllowUnsigned -Force -PassThru
    $script:info = Get-Micropatch -ProcessId $target.Id
    $script:site = Get-MicropatchSite -Path $patch -ProcessId $target.Id
    $script:hmodule = Get-HotpatchModule -ProcessId $target.Id | Select-Object -First 1
    $script:audit = Get-MicropatchAuditLog | Select-Object -Last 1
    $script:signature = Get-MicropatchSignature -Path $patch
    $cert = Join-Path $dir 'publisher.pem'
    $rsa = [System.Security.Cryptography.RSA]::Create(2048)
    $req = [System.Security.Cryptography.X509Certificates.CertificateRequest]::new('CN=Pester Publisher', $rsa, 'SHA256', [System.Security.Cryptography.RSASignaturePadding]::Pkcs1)
    $eku = [System.Security.Cryptography.OidCollection]::new()
    $null = $eku.Add([System.Security.Cryptography.Oid]::new('1.3.6.1.5.5.7.3.3'))
    $req.CertificateExtensions.Add([System.Security.Cryptography.X509Certificates.X509EnhancedKeyUsageExtension]::new($eku, $false))
    $script:cert = $req.CreateSelfSigned([DateTimeOffset]::Now.AddDays(-1), [DateTimeOffset]::Now.AddDays(30))
    [System.IO.File]::WriteAllText($cert, $script:cert.ExportCertificatePem())
    $script:publisher = Add-MicropatchTrustedPublisher -Path $cert -Force -PassThru
    $catalogPatch = New-TestPatch -Directory (Join-Path $dir 'catalog') -Id 'HP-PESTER-CAT1'
    $script:entry = Register-Micropatch -Path $catalogPatch -AllowUnsigned -Force -PassThru
    $script:sync = Sync-Micropatch -Force | Where-Object ProcessId -eq $target.Id | Select-Object -First 1
    $script:compliance = Test-MicropatchCompliance
    $script:offline = Test-Micropatch -Path $patch -ModulePath (Get-TestTargetPath) | Select-Object -First 1
    $script:outputs = [ordered]@{
        HotpatchTarget = $targetRow; MicropatchResult = $install; MicropatchInfo = $info; MicropatchSite = $site
        HotpatchModule = $hmodule; MicropatchAuditRecord = $audit; MicropatchSignature = $signature
        MicropatchTrustedPublisher = $publisher; MicropatchCatalogEntry = $entry; MicropatchSyncResult = $sync
        MicropatchCompliance = $compliance; MicropatchTestResult = $offline
    }
}

AfterAll {
    Get-Micropatch -ProcessId $target.Id -ErrorAction SilentlyContinue | Uninstall-Micropatch -Force -ErrorAction SilentlyContinue
    Get-MicropatchCatalog -ErrorAction SilentlyContinue | Unregister-Micropatch -Force -ErrorAction SilentlyContinue
    Get-MicropatchTrustedPublisher -ErrorAction SilentlyContinue | Remove-MicropatchTrustedPublisher -Force -ErrorAction SilentlyContinue
    Stop-TestTarget
    Remove-Item -Recurse -Force $dir -ErrorAction SilentlyContinue
}

Describe 'Every output type' {
    It 'was produced for <_>' -ForEach @('HotpatchTarget', 'MicropatchResult', 'MicropatchInfo', 'MicropatchSite', 'HotpatchModule', 'MicropatchAuditRecord',
        'MicropatchSignature', 'MicropatchTrustedPublisher', 'MicropatchCatalogEntry', 'MicropatchSyncResult', 'MicropatchCompliance', 'MicropatchTestResult') {
        $outputs[$_] | Should -Not -BeNullOrEmpty
        $outputs[$_].PSObject.TypeNames[0] | Should -Be "HotpatchTools.$_"
    }

    It 'the list above is every output type of the module''s cmdlets' {
        $declared = Get-Command -Module HotpatchTools -CommandType Cmdlet | ForEach-Object OutputType | ForEach-Object Name |
            Where-Object { $_ -like 'HotpatchTools.*' } | ForEach-Object { $_ -replace '^HotpatchTools\.' } | Sort-Object -Unique
        $declared | Should -Be ($outputs.Keys | Sort-Object)
    }

    It 'the install worked on the live target' {
        $install.Result | Should -Be 'Installed'
        Invoke-TestTarget $target -Argument 500 | Should -Be -1
        Invoke-TestTarget $target -Argument 5 | Should -Be 16
    }
}

Describe 'Table views' {
    It '<_> fits in 80 columns and shows its key columns' -ForEach @('HotpatchTarget', 'MicropatchResult', 'MicropatchInfo', 'MicropatchSite', 'HotpatchModule', 'MicropatchAuditRecord',
        'MicropatchSignature', 'MicropatchTrustedPublisher', 'MicropatchCatalogEntry', 'MicropatchSyncResult', 'MicropatchCompliance', 'MicropatchTestResult') {
        $text = $outputs[$_] | Format-Table | Out-String -Width 80
        $lines = $text -split "`n" | ForEach-Object TrimEnd | Where-Object { $_ }
        $lines.Count | Should -BeGreaterOrEqual 3 -Because 'a header, its rule and a row'
        $lines | ForEach-Object { $_.Length | Should -BeLessOrEqual 80 -Because "'$_' is wider than 80 columns" }
        $text | Should -Not -Match 'HotpatchTools\.' -Because 'a view shows values, not type names'
    }

    It 'the target row names pid, patch and state at 80 columns' {
        $text = $targetRow | Format-Table | Out-String -Width 80
        $text | Should -Match "\b$($target.Id)\b"
        $text | Should -Match 'HP-PESTER-0001'
        $text | Should -Match 'Vulnerable'
    }

    It 'the reason of a target row is shown whole at <_> columns (wrapped, not cut)' -ForEach 80, 120 {
        $text = $targetRow | Format-Table | Out-String -Width $_
        $text | Should -Not -Match '…'
        ($text -replace '\s+', '') | Should -Match ([regex]::Escape(($targetRow.Reason -replace '\s+', '')))
    }

    It 'an offline test result shows its whole module path at <_> columns (wrapped, not cut): builds differ at its end' -ForEach 80, 120 {
        $builds = Join-Path $dir 'builds-with-a-folder-name-long-enough-to-wrap'
        foreach ($v in '1.2.11', '1.2.13') {
            $null = New-Item -ItemType Directory -Force -Path (Join-Path $builds $v)
            Copy-Item (Get-TestTargetPath) (Join-Path $builds "$v/psttarget")
        }
        $rows = Test-Micropatch -Path $patch -ModulePath $builds
        $rows.Count | Should -Be 2
        $text = $rows | Format-Table | Out-String -Width $_
        $text | Should -Not -Match '…'
        foreach ($r in $rows) { ($text -replace '\s+', '') | Should -Match ([regex]::Escape($r.ModulePath)) }
    }

    It 'the audit Result is not cut at 80 columns' {
        $text = $audit | Format-Table | Out-String -Width 80
        $text | Should -Match '\bInstalled\b'
    }

    It 'the install result shows Installed and its freeze time at 120 columns' {
        $text = $install | Format-Table | Out-String -Width 120
        $text | Should -Match 'Installed'
        $text | Should -Match 'FreezeMilliseconds'
    }
}

Describe 'Serialization' {
    It 'ConvertTo-Json of <_> round-trips its properties' -ForEach @('HotpatchTarget', 'MicropatchResult', 'MicropatchInfo', 'MicropatchSite', 'HotpatchModule', 'MicropatchAuditRecord',
        'MicropatchSignature', 'MicropatchTrustedPublisher', 'MicropatchCatalogEntry', 'MicropatchSyncResult', 'MicropatchCompliance', 'MicropatchTestResult') {
        $object = $outputs[$_]
        $json = $object | ConvertTo-Json -Depth 3 -WarningAction Stop
        $back = $json | ConvertFrom-Json
        foreach ($p in $object.PSObject.Properties) {
            if ($null -eq $p.Value) { continue }
            if ($p.Value -is [enum]) {
                $back.($p.Name) | Should -BeOfType [string] -Because "$_.$($p.Name) is an enum: JSON readers want its name"
                $back.($p.Name) | Should -Be $p.Value.ToString()
            }
            elseif ($p.Value -is [string] -or $p.Value -is [int] -or $p.Value -is [bool]) {
                $back.($p.Name) | Should -Be $p.Value -Because "$_.$($p.Name)"
            }
        }
    }

    It 'Export-Csv of <_> writes no .NET type names' -ForEach @('HotpatchTarget', 'MicropatchResult', 'MicropatchInfo', 'MicropatchSite', 'HotpatchModule', 'MicropatchAuditRecord',
        'MicropatchSignature', 'MicropatchTrustedPublisher', 'MicropatchCatalogEntry', 'MicropatchSyncResult', 'MicropatchCompliance', 'MicropatchTestResult') {
        $csv = Join-Path $dir "$_.csv"
        $outputs[$_] | Export-Csv -Path $csv -NoTypeInformation
        $text = Get-Content -Raw $csv
        $text | Should -Not -Match 'System\.[A-Z][A-Za-z]*(\[\])?' -Because 'arrays and objects need a flat string form'
        $row = Import-Csv $csv
        @($row).Count | Should -Be 1
    }

    It 'the sites of a listing flatten to readable text in CSV' {
        $csv = Join-Path $dir 'sites.csv'
        $info | Export-Csv -Path $csv -NoTypeInformation
        (Import-Csv $csv).Sites | Should -Match '^0x[0-9a-f]+: '
    }
}

Describe 'Pipelines between the cmdlets' {
    It 'Get-HotpatchTarget | Get-MicropatchSite' {
        $sites = Get-HotpatchTarget -Path $patch -ProcessId $target.Id | Get-MicropatchSite
        $sites.State | Should -Be 'Patched'
    }

    It 'Get-HotpatchTarget | Get-HotpatchModule' {
        $mods = Get-HotpatchTarget -Path $patch -ProcessId $target.Id | Get-HotpatchModule
        $mods.Name | Should -Contain 'psttarget'
    }

    It 'Get-Micropatch | Get-MicropatchSite' {
        $sites = Get-Micropatch -ProcessId $target.Id | Get-MicropatchSite
        $sites.Symbol | Should -Contain 'triple'
    }

    It 'Get-Micropatch | Uninstall-Micropatch | and back through Get-HotpatchTarget | Install-Micropatch' {
        $removed = Get-Micropatch -ProcessId $target.Id | Uninstall-Micropatch -Force -PassThru
        $removed.Result | Should -Be 'Removed'
        Invoke-TestTarget $target -Argument 500 | Should -Be 1501
        $again = Get-HotpatchTarget -Path $patch -ProcessId $target.Id | Where-Object State -eq Vulnerable | Install-Micropatch -AllowUnsigned -Force -PassThru
        $again.Result | Should -Be 'Installed'
        Invoke-TestTarget $target -Argument 500 | Should -Be -1
    }

    It 'Get-Micropatch | Uninstall-Micropatch passes over a retired patch (already removed) without an error; named, it is still NotInstalled' {
        # A call parked in sleep() from the cave holds a return address into it, so the uninstall keeps the cave (retired).
        $t2 = Start-TestTarget
        try {
            $retiring = New-TestPatch -Directory $dir -Id 'HP-PESTER-RETIRE' -Code "push rdi`nmov edi, 30`ncall libc.so.6!sleep`npop rdi"
            Install-Micropatch -Path $retiring -ProcessId $t2.Id -AllowUnsigned -Force
            $t2.StandardInput.WriteLine('call triple 500')
            $t2.StandardInput.Flush()
            Start-Sleep -Milliseconds 500
            Uninstall-Micropatch -PatchId 'HP-PESTER-RETIRE' -ProcessId $t2.Id -Force -WarningAction SilentlyContinue
            $listed = Get-Micropatch -ProcessId $t2.Id
            $listed.State | Should -Be 'Retired'
            $verbose = $listed | Uninstall-Micropatch -Force -ErrorVariable e -ErrorAction SilentlyContinue -Verbose 4>&1
            $e.Count | Should -Be 0
            "$verbose" | Should -Match 'HP-PESTER-RETIRE is already removed; its cave is kept'
            Uninstall-Micropatch -PatchId 'HP-PESTER-RETIRE' -ProcessId $t2.Id -Force -ErrorVariable e2 -ErrorAction SilentlyContinue
            $e2.Count | Should -Be 1
            $e2[0].FullyQualifiedErrorId | Should -BeLike 'NotInstalled*'
        }
        finally { Stop-TestTarget -Target $t2 }
    }

    It 'Get-MicropatchCatalog | Disable-Micropatch | Enable-Micropatch' {
        Get-MicropatchCatalog -PatchId 'HP-PESTER-CAT1' | Disable-Micropatch -Force
        (Get-MicropatchCatalog -PatchId 'HP-PESTER-CAT1').Enabled | Should -BeFalse
        Get-MicropatchCatalog -PatchId 'HP-PESTER-CAT1' | Enable-Micropatch -Force
        (Get-MicropatchCatalog -PatchId 'HP-PESTER-CAT1').Enabled | Should -BeTrue
    }

    It 'objects piped into Get-MicropatchCatalog and Get-MicropatchTrustedPublisher that share an id or thumbprint give each entry once' {
        # As Get-Micropatch lists a patch once per process, and Get-MicropatchSignature a publisher once per file.
        $ids = 'HP-PESTER-CAT1', 'HP-PESTER-CAT1', 'HP-PESTER-NOTREG', 'HP-PESTER-NOTREG' | ForEach-Object { [pscustomobject]@{ PatchId = $_ } }
        $entries = $ids | Get-MicropatchCatalog -ErrorVariable e -ErrorAction SilentlyContinue
        @($entries).PatchId | Should -Be @('HP-PESTER-CAT1')
        $e.Count | Should -Be 1
        "$($e[0])" | Should -Match 'HP-PESTER-NOTREG is not registered'
        $pubs = 1, 2 | ForEach-Object { [pscustomobject]@{ Thumbprint = $publisher.Thumbprint } } | Get-MicropatchTrustedPublisher
        @($pubs).Thumbprint | Should -Be @($publisher.Thumbprint)
    }

    It 'Get-HotpatchTarget -PatchId | Install-Micropatch installs the catalog entry as by id: its AllowUnsigned holds, and a disabled entry is refused' {
        $before = @(Get-Micropatch -ProcessId $target.Id)
        $before | Uninstall-Micropatch -Force
        try {
            Disable-Micropatch -PatchId 'HP-PESTER-CAT1' -Force
            Get-HotpatchTarget -PatchId 'HP-PESTER-CAT1' -ProcessId $target.Id | Install-Micropatch -Force -ErrorVariable e -ErrorAction SilentlyContinue
            $e.Count | Should -Be 1
            $e[0].FullyQualifiedErrorId | Should -BeLike 'PatchDisabled*'
            Invoke-TestTarget $target -Argument 500 | Should -Be 1501
            Enable-Micropatch -PatchId 'HP-PESTER-CAT1' -Force
            # Registered with -AllowUnsigned: the catalog copy has no signature, and the entry says that is allowed.
            $r = Get-HotpatchTarget -PatchId 'HP-PESTER-CAT1' -ProcessId $target.Id | Install-Micropatch -Force -PassThru
            $r.Result | Should -Be 'Installed'
            Invoke-TestTarget $target -Argument 500 | Should -Be -1
        }
        finally {
            Enable-Micropatch -PatchId 'HP-PESTER-CAT1' -Force
            Get-Micropatch -ProcessId $target.Id | Uninstall-Micropatch -Force
            $null = Install-Micropatch -Path $patch -ProcessId $target.Id -AllowUnsigned -Force
        }
    }

    It 'Target rows of one disabled entry piped to Install-Micropatch give one PatchDisabled error' {
        # Get-HotpatchTarget -PatchId lists the entry once per process; two rows stand for two processes.
        Disable-Micropatch -PatchId 'HP-PESTER-CAT1' -Force
        try {
            $row = Get-HotpatchTarget -PatchId 'HP-PESTER-CAT1' -ProcessId $target.Id
            $row, $row | Install-Micropatch -Force -ErrorVariable e -ErrorAction SilentlyContinue
            $e.Count | Should -Be 1
            $e[0].FullyQualifiedErrorId | Should -BeLike 'PatchDisabled*'
        }
        finally { Enable-Micropatch -PatchId 'HP-PESTER-CAT1' -Force }
    }

    It 'Sync-Micropatch names a -PatchId that matches no enabled entry even when another one does' {
        # -WhatIf: a machine-wide sync must not reach other sessions' targets of the same module.
        $null = Sync-Micropatch -PatchId 'HP-PESTER-CAT1', 'HP-PESTER-NOSUCH' -WhatIf -WarningVariable w -WarningAction SilentlyContinue
        $named = @($w | Where-Object Message -Match 'No enabled catalog patch matches')
        $named.Count | Should -Be 1
        $named[0].Message | Should -Match 'matches HP-PESTER-NOSUCH \('
    }

    It 'Get-HotpatchModule reads a process piped in several times (one target row per patch) once' {
        $once = Get-HotpatchModule -ProcessId $target.Id
        $rows = 1, 2 | ForEach-Object { [pscustomobject]@{ ProcessId = $target.Id; PatchId = "HP-$_" } }
        $piped = $rows | Get-HotpatchModule
        $piped.Count | Should -Be $once.Count
        ($piped | Select-Object -Unique -Property Name).Count | Should -Be $once.Count
    }

    It 'Get-MicropatchTrustedPublisher | Get-MicropatchSignature paths: Get-ChildItem | Get-MicropatchSignature' {
        $sigs = Get-ChildItem -Path $dir -Filter '*.micropatch.yaml' | Get-MicropatchSignature
        $sigs.Status | Should -Contain 'NotSigned'
    }

    It 'Get-HotpatchTarget | Get-MicropatchSignature writes a file shared by several target rows (one per process) once' {
        $rows = 1, 2 | ForEach-Object { [pscustomobject]@{ Path = $patch; ProcessId = $target.Id + $_ } }
        $sigs = $rows | Get-MicropatchSignature
        @($sigs).Count | Should -Be 1
        @($sigs)[0].Status | Should -Be 'NotSigned'
    }

    It 'Get-ChildItem | Get-HotpatchTarget takes files by path' {
        $rows = Get-ChildItem -Path $dir -Filter 'HP-PESTER-0001.micropatch.yaml' | Get-HotpatchTarget -ProcessId $target.Id
        $rows.PatchId | Should -Be 'HP-PESTER-0001'
    }
}

Describe 'Errors as scripts see them' {
    It '-ErrorAction Stop throws a terminating error with the ErrorId' {
        { Install-Micropatch -Path (Join-Path $dir 'missing.micropatch.yaml') -ProcessId $target.Id -AllowUnsigned -Force -ErrorAction Stop } |
            Should -Throw -ErrorId '*'
    }

    It '-ErrorAction SilentlyContinue sets $? to false and records the error' {
        $Error.Clear()
        Get-HotpatchTarget -Path $patch -ProcessId 999999 -ErrorAction SilentlyContinue
        $ok = $?
        $ok | Should -BeFalse
        $Error.Count | Should -BeGreaterThan 0
    }

    It 'a success leaves $? true' {
        $null = Get-Micropatch -ProcessId $target.Id
        $ok = $?
        $ok | Should -BeTrue
    }
}

Describe 'Completion' {
    BeforeAll {
        # What TabExpansion2 offers with the cursor at the end of the line.
        function Complete([string] $line) { (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches }
    }

    It 'TabExpansion2 completes the cmdlet names' {
        (Complete 'Install-Micro').CompletionText | Should -Contain 'Install-Micropatch'
    }

    It 'TabExpansion2 completes -PatchId from the installed patches' {
        (Complete 'Uninstall-Micropatch -PatchId HP-PES').CompletionText | Should -Contain 'HP-PESTER-0001'
    }

    It 'TabExpansion2 completes -ProcessId with the target and not kernel threads' {
        $r = Complete 'Get-Micropatch -ProcessId '
        $r.CompletionText | Should -Contain "$($target.Id)"
        $r.ListItemText | Should -Not -Match 'kthreadd'
    }

    It 'TabExpansion2 completes -ProcessId by process name' {
        (Complete 'Get-Micropatch -ProcessId psttar').CompletionText | Should -Contain "$($target.Id)"
    }

    It 'TabExpansion2 offers for -ProcessId only processes that load the module of the -Path file' {
        $r = Complete "Install-Micropatch -Path '$patch' -ProcessId "
        $r.CompletionText | Should -Contain "$($target.Id)"
        $r.ListItemText | ForEach-Object { $_ | Should -Match '\(psttarget\)$' }
    }
}

Describe 'Thread jobs' {
    It 'Start-ThreadJob runs the cmdlets and brings their objects back' {
        $job = Start-ThreadJob -ScriptBlock { param($m, $p) Import-Module $m; Get-Micropatch -ProcessId $p } -ArgumentList (Get-ManifestPath), $target.Id
        $got = $job | Wait-Job -Timeout 60 | Receive-Job
        $job | Remove-Job -Force
        $got.PatchId | Should -Be 'HP-PESTER-0001'
        $got.PSObject.TypeNames[0] | Should -Be 'HotpatchTools.MicropatchInfo'
    }
}
