// The HotpatchTools demo: a vulnerable service is patched and unpatched live through the module's
// cmdlets, in a real PowerShell runspace, with a patch signed by a publisher the machine trusts. It
// checks what it shows and exits 1 if the service did not behave as the patch promises, so it doubles
// as a smoke test.
using System.Diagnostics;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

var root = FindRepoRoot();
var work = Directory.CreateTempSubdirectory("hotpatchtools-demo-").FullName;
var exe = Path.Combine(work, "vulnsvc");
// Signed in a copy, so the demo leaves no .sig in the repository.
var patchPath = Path.Combine(work, "HP-DEMO-0001.micropatch.yaml");
File.Copy(Path.Combine(root, "demo", "HP-DEMO-0001.micropatch.yaml"), patchPath);
// The demo's certificate must not join the machine's real trusted publishers, nor its records the real audit
// log: unless told otherwise, the machine-wide files live in the demo's folder for this run.
const string machineRootVariable = "HOTPATCHTOOLS_MACHINE_ROOT";
if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(machineRootVariable)))
    Environment.SetEnvironmentVariable(machineRootVariable, Path.Combine(work, "machine"));
using var demoKey = RSA.Create(2048);
var request = new CertificateRequest("CN=HotpatchTools Demo Publisher", demoKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(new OidCollection { new Oid("1.3.6.1.5.5.7.3.3") }, false));
using var publisher = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));

Step("Building the vulnerable sample service (demo/vulnsvc.c) with gcc -O2");
Run("gcc", "-O2 -o " + exe + " " + Path.Combine(root, "demo", "vulnsvc.c"));

var service = StartDetached(exe);
var lines = new List<string>();
var relay = new Thread(() =>
{
    string? line;
    var early = new Queue<string>(service.Early);
    while ((line = early.Count > 0 ? early.Dequeue() : service.Output.ReadLine()) != null)
    {
        lock (lines) lines.Add(line);
        Console.ForegroundColor = line.Contains("API-KEY") ? ConsoleColor.Red : ConsoleColor.DarkGray;
        Console.WriteLine("    [vulnsvc] " + line);
        Console.ResetColor();
    }
}) { IsBackground = true };
relay.Start();
int pid = service.Pid;
int failures = 0;

try
{
    Thread.Sleep(1600);
    using var runspace = RunspaceFactory.CreateRunspace(InitialSessionState.CreateDefault2());
    runspace.Open();
    Ps(runspace, "Import-Module " + Path.Combine(root, "HotpatchTools.psd1"));
    runspace.SessionStateProxy.SetVariable("cert", publisher);
    Console.WriteLine("(trusted publishers and audit log of this run: " + Environment.GetEnvironmentVariable(machineRootVariable) + ")");

    Step("Which processes does the patch apply to, and in what state?");
    Show(Ps(runspace, "Get-HotpatchTarget -Path " + patchPath), "ProcessId", "ProcessName", "Module", "PatchId", "State");
    Expect(LeaksNow(), "before the patch, malicious requests leak the secret");

    Step("Sign the patch with a code-signing certificate ($cert, made for the demo): a detached CMS signature beside the file");
    Show(Ps(runspace, "Set-MicropatchSignature -Path " + patchPath + " -Certificate $cert -Force -PassThru"), "Status", "Signer", "Thumbprint", "SigningTime");

    Step("Not a trusted publisher yet: the install is refused, nothing is written");
    PsRefused(runspace, "Install-Micropatch -Path " + patchPath + " -ProcessId " + pid + " -Force", "UntrustedPublisher");
    Expect(LeaksNow(), "the refused patch changed nothing: malicious requests still leak");

    Step("An administrator trusts the publisher (machine-wide list, root only)");
    Show(Ps(runspace, "Add-MicropatchTrustedPublisher -Certificate $cert -Force -PassThru"), "Kind", "Thumbprint", "Subject");
    Show(Ps(runspace, "Get-MicropatchSignature -Path " + patchPath), "Status", "Trusted", "Signer");

    Step("Install the micropatch live (-Verbose shows what the engine does)");
    Show(Ps(runspace, "Install-Micropatch -Path " + patchPath + " -ProcessId " + pid + " -Force -PassThru -Verbose"), "ProcessId", "PatchId", "Result", "FreezeMilliseconds", "CaveAddress");
    Thread.Sleep(1600);
    Expect(!LeaksNow() && Recent().Any(l => l.Contains("rejected")), "after the patch, malicious requests are rejected");

    Step("What is installed, read back from the process itself");
    Show(Ps(runspace, "Get-Micropatch -ProcessId " + pid), "ProcessId", "PatchId", "Module", "State", "CaveAddress", "Sites");

    Step("Uninstall it again: original bytes back, cave freed");
    Show(Ps(runspace, "Get-Micropatch -ProcessId " + pid + " | Uninstall-Micropatch -Force -PassThru"), "ProcessId", "PatchId", "Result", "Message");
    Thread.Sleep(1600);
    Expect(LeaksNow(), "after uninstall, the original (vulnerable) code runs again");

    Step("The audit trail: every install, uninstall and refusal, with who, what and why");
    var trail = Ps(runspace, "Get-MicropatchAuditLog -PatchId HP-DEMO-0001");
    Show(trail, "Time", "User", "Action", "Result", "ProcessId", "ErrorId", "Signer");
    Expect(trail.Select(r => r.Properties["Result"].Value + "").SequenceEqual(new[] { "Refused", "Installed", "Removed" }), "the audit log holds the refusal, the install and the uninstall");
}
finally
{
    service.Kill();
    Directory.Delete(work, recursive: true);
}
Console.WriteLine();
Console.WriteLine(failures == 0 ? "Demo complete: patched and unpatched live, the service never restarted (pid " + pid + ")." : failures + " demo check(s) failed.");
return failures == 0 ? 0 : 1;

List<string> Recent()
{
    lock (lines) return lines.Skip(Math.Max(0, lines.Count - 2)).ToList();
}

bool LeaksNow() => Recent().Any(l => l.Contains("API-KEY"));

void Expect(bool ok, string what)
{
    Console.ForegroundColor = ok ? ConsoleColor.Green : ConsoleColor.Red;
    Console.WriteLine((ok ? "  ✔ " : "  ✘ ") + what);
    Console.ResetColor();
    if (!ok) failures++;
}

// The command shown as a user would type it, ready to run in the runspace.
PowerShell Echoed(Runspace rs, string command)
{
    Console.ForegroundColor = ConsoleColor.Yellow;
    Console.WriteLine("PS> " + command.Replace(root + "/", "./"));
    Console.ResetColor();
    var ps = PowerShell.Create();
    ps.Runspace = rs;
    ps.AddScript(command);
    return ps;
}

// A command that must be refused with this ErrorId: the refusal is the point, not a failure of the demo.
void PsRefused(Runspace rs, string command, string errorId)
{
    using var ps = Echoed(rs, command);
    ps.Invoke();
    foreach (var e in ps.Streams.Error) Console.WriteLine("ERROR: " + e);
    Expect(ps.Streams.Error.Count == 1 && ps.Streams.Error[0].FullyQualifiedErrorId.StartsWith(errorId, StringComparison.Ordinal), "refused with " + errorId);
}

static void Step(string title)
{
    Console.WriteLine();
    Console.ForegroundColor = ConsoleColor.Cyan;
    Console.WriteLine("== " + title);
    Console.ResetColor();
}

List<PSObject> Ps(Runspace rs, string command)
{
    using var ps = Echoed(rs, command);
    var result = ps.Invoke().ToList();
    foreach (var v in ps.Streams.Verbose) Console.WriteLine("VERBOSE: " + v.Message);
    foreach (var w in ps.Streams.Warning) Console.WriteLine("WARNING: " + w.Message);
    foreach (var e in ps.Streams.Error) { Console.WriteLine("ERROR: " + e); failures++; }
    return result;
}

static void Show(List<PSObject> objects, params string[] columns)
{
    var rows = objects.Select(o => columns.Select(c => Format(o.Properties[c]?.Value)).ToArray()).ToList();
    var widths = columns.Select((c, i) => Math.Min(60, Math.Max(c.Length, rows.Select(r => r[i].Length).DefaultIfEmpty(0).Max()))).ToArray();
    Console.WriteLine(string.Join("  ", columns.Select((c, i) => c.PadRight(widths[i]))));
    Console.WriteLine(string.Join("  ", widths.Select(w => new string('-', w))));
    foreach (var r in rows) Console.WriteLine(string.Join("  ", r.Select((v, i) => (v.Length > widths[i] ? v[..(widths[i] - 1)] + "…" : v).PadRight(widths[i]))));
}

static string Format(object? v) => v switch
{
    null => "",
    object[] a => string.Join("; ", a),
    PSObject { BaseObject: object[] a } => string.Join("; ", a),
    double d => d.ToString("0.00"),
    _ => v.ToString() ?? "",
};

static void Run(string file, string args)
{
    using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true })!;
    var err = p.StandardError.ReadToEnd();
    p.WaitForExit();
    if (p.ExitCode != 0) throw new InvalidOperationException(file + " failed: " + err);
}

// Started through a shell that exits at once: the service is not our child, as a real service would not be.
static (int Pid, StreamReader Output, List<string> Early, Action Kill) StartDetached(string path)
{
    var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardInput = true };
    psi.ArgumentList.Add("-c");
    psi.ArgumentList.Add("\"$0\" </dev/null & echo \"$!\"");
    psi.ArgumentList.Add(path);
    var sh = Process.Start(psi)!;
    // The service shares the pipe and may speak before the shell has echoed its pid.
    var early = new List<string>();
    string first;
    while (!int.TryParse(first = sh.StandardOutput.ReadLine() ?? throw new InvalidOperationException("the service did not start"), out _)) early.Add(first);
    int pid = int.Parse(first);
    return (pid, sh.StandardOutput, early, () => { try { Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { } });
}

static string FindRepoRoot()
{
    foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "HotpatchTools.psd1"))) return d.FullName;
    throw new InvalidOperationException("Run the demo from the HotpatchTools repository.");
}
