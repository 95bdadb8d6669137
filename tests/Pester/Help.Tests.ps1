# Get-Help as a user reads it in pwsh: every cmdlet's -Full and -Examples, every example's code parses as
# PowerShell (sample output belongs in the remarks), and the about topics are found by name.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    Import-Module (Get-ManifestPath) -Force
    $script:cmdlets = (Get-Command -Module HotpatchTools -CommandType Cmdlet).Name | Sort-Object
}

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    Import-Module (Get-ManifestPath) -Force
}

Describe 'Get-Help <_>' -ForEach $cmdlets {
    BeforeAll { $name = $_ }

    It '-Full shows a synopsis, a description, the syntax and every parameter' {
        $text = Get-Help $name -Full | Out-String -Width 120
        $text | Should -Match "SYNOPSIS"
        $text | Should -Match "SYNTAX"
        $text | Should -Match "DESCRIPTION"
        $text | Should -Match "PARAMETERS"
        foreach ($p in (Get-Command $name).Parameters.Keys | Where-Object { $_ -notin [System.Management.Automation.Cmdlet]::CommonParameters -and $_ -notin [System.Management.Automation.Cmdlet]::OptionalCommonParameters }) {
            $text | Should -Match "-$p\b" -Because "-Full lists -$p"
        }
    }

    It '-Examples has examples, and the code of each parses' {
        $examples = @((Get-Help $name -Examples).examples.example)
        $examples.Count | Should -BeGreaterThan 0
        foreach ($e in $examples) {
            $errors = $null
            $null = [System.Management.Automation.Language.Parser]::ParseInput($e.code, [ref]$null, [ref]$errors)
            $errors | Should -BeNullOrEmpty -Because "$($e.title.Trim('- ')) of $name is code:`n$($e.code)"
        }
    }

    It '-Examples output shows code and remarks as text' {
        $text = Get-Help $name -Examples | Out-String -Width 100
        $text | Should -Match 'Example 1'
        $text | Should -Match ([regex]::Escape($name))
    }
}

Describe 'Sample output stays in the remarks' {
    It 'the table of Get-HotpatchModule example 1 is shown, outside the code' {
        $e = @((Get-Help Get-HotpatchModule -Examples).examples.example)[0]
        $e.code | Should -Not -Match 'BaseAddress'
        ($e.remarks | Out-String) | Should -Match 'BaseAddress'
    }
}

Describe 'About topics' {
    It 'Get-Help about_HotpatchTools* finds the module''s topics' {
        $topics = Get-Help about_HotpatchTools* | ForEach-Object Name
        $topics | Should -Not -BeNullOrEmpty
    }
}
