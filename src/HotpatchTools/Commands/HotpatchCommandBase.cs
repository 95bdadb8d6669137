using System.Management.Automation.Remoting;
using HotpatchTools.Engine.Audit;
using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Machine;
using HotpatchTools.Engine.Trust;
using HotpatchTools.Engine.Patching;

namespace HotpatchTools.Commands
{
    /// <summary>What every HotpatchTools cmdlet shares: the engine, error records, confirmation.</summary>
    public abstract class HotpatchCommandBase : PSCmdlet
    {
        private HotpatchEngine? _engine;

        /// <summary>Created on first use so that -WhatIf on a bad file still reports the file, not the platform.</summary>
        internal HotpatchEngine Engine
        {
            get
            {
                if (_engine != null) return _engine;
                try
                {
                    return _engine = new HotpatchEngine(options: new EngineOptions { Log = WriteVerbose, Warn = WriteWarning, Audit = RecordAudit });
                }
                catch (HotpatchException e)
                {
                    ThrowFailure(e, null);
                    throw;
                }
            }
        }

        internal static string ErrorId(HotpatchErrorKind kind) => kind.ToString();

        internal static ErrorCategory Category(HotpatchErrorKind kind)
        {
            switch (kind)
            {
                case HotpatchErrorKind.InvalidPatchFile:
                case HotpatchErrorKind.AssemblyError: return ErrorCategory.InvalidData;
                case HotpatchErrorKind.PlatformNotSupported: return ErrorCategory.NotImplemented;
                case HotpatchErrorKind.ProcessNotFound:
                case HotpatchErrorKind.ProcessExited:
                case HotpatchErrorKind.ModuleNotLoaded:
                case HotpatchErrorKind.NotInstalled: return ErrorCategory.ObjectNotFound;
                case HotpatchErrorKind.AccessDenied: return ErrorCategory.PermissionDenied;
                case HotpatchErrorKind.Busy:
                case HotpatchErrorKind.ThreadInSpan: return ErrorCategory.ResourceBusy;
                case HotpatchErrorKind.IdentityMismatch:
                case HotpatchErrorKind.ExpectMismatch:
                case HotpatchErrorKind.SiteModified: return ErrorCategory.InvalidResult;
                case HotpatchErrorKind.UnsafeSite: return ErrorCategory.InvalidOperation;
                case HotpatchErrorKind.NoCaveSpace: return ErrorCategory.LimitsExceeded;
                case HotpatchErrorKind.AlreadyInstalled: return ErrorCategory.ResourceExists;
                case HotpatchErrorKind.WriteFailed: return ErrorCategory.WriteError;
                case HotpatchErrorKind.NotSigned:
                case HotpatchErrorKind.HashMismatch:
                case HotpatchErrorKind.SignatureInvalid:
                case HotpatchErrorKind.UntrustedPublisher:
                case HotpatchErrorKind.SuspiciousProcess: return ErrorCategory.SecurityError;
                case HotpatchErrorKind.NotElevated: return ErrorCategory.PermissionDenied;
                case HotpatchErrorKind.AuditFailed: return ErrorCategory.WriteError;
                case HotpatchErrorKind.TrustStoreError: return ErrorCategory.InvalidData;
                default: return ErrorCategory.NotSpecified;
            }
        }

        internal static ErrorRecord ToErrorRecord(HotpatchException e, object? target)
        {
            e.Advice ??= Advice(e.Kind);
            return new ErrorRecord(e, ErrorId(e.Kind), Category(e.Kind), target);
        }

        /// <summary>The command or switch that deals with a failure: the engine's messages name none.</summary>
        internal static string? Advice(HotpatchErrorKind kind) => kind switch
        {
            HotpatchErrorKind.NotSigned => "Sign it with Set-MicropatchSignature, or pass -AllowUnsigned to install an unsigned file.",
            HotpatchErrorKind.UntrustedPublisher => TrustAdvice,
            _ => null,
        };

        internal const string TrustAdvice = "An administrator trusts it with Add-MicropatchTrustedPublisher.";

        /// <summary>Reports one failed target and lets the command go on with the next.</summary>
        internal void WriteFailure(HotpatchException e, object? target) => WriteError(OnThisComputer(ToErrorRecord(e, target)));

        /// <summary>
        /// In a remote session the message names this computer: a fleet's errors are read side by side (often as
        /// text, where OriginInfo is not shown), and one that does not say where it happened cannot be acted on.
        /// </summary>
        internal ErrorRecord OnThisComputer(ErrorRecord record)
        {
            if (!string.Equals(Host?.Name, "ServerRemoteHost", StringComparison.Ordinal)) return record;
            string message = record.ErrorDetails?.Message ?? record.Exception?.Message ?? "";
            if (message.Length > 0) record.ErrorDetails = new ErrorDetails(message + " (on " + Environment.MachineName + ")");
            return record;
        }

        /// <summary>Stops the command with a terminating error, naming this computer in a remote session.</summary>
        internal void ThrowFailure(HotpatchException e, object? target) => ThrowTerminatingError(OnThisComputer(ToErrorRecord(e, target)));

        /// <summary>
        /// Loads a patch file to install it: every install path goes through here, so every one gets the trust
        /// policy (tampered, badly signed or untrusted files always refused; unsigned ones unless allowed) and each
        /// refusal is audited and reported as an error record naming the file.
        /// </summary>
        internal Micropatch? LoadPatch(string path, bool allowUnsigned = false)
        {
            try
            {
                return TrustPolicy.Load(path, allowUnsigned);
            }
            catch (PatchRefusedException e)
            {
                RecordAudit(AuditRecord.ForRefusal(e));
                WriteFailure(e, path);
                return null;
            }
            catch (HotpatchException e)
            {
                WriteFailure(e, path);
                return null;
            }
        }

        /// <summary>Parses a patch file only to look at it (Get-HotpatchTarget): nothing is installed, so no trust check.</summary>
        internal Micropatch? ReadPatch(string path)
        {
            try
            {
                return MicropatchParser.Load(path);
            }
            catch (HotpatchException e)
            {
                WriteFailure(e, path);
                return null;
            }
        }

        /// <summary>
        /// For cmdlets that change processes or the machine's trust, before anything is touched: an elevated session
        /// and a writable audit log, or a terminating error (the refusal itself still reaches the system log).
        /// </summary>
        internal void RequireElevationAndAudit(string action)
        {
            try
            {
                Privilege.Demand(action);
                AuditLog.Machine.EnsureWritable();
            }
            catch (HotpatchException e)
            {
                if (e.Kind == HotpatchErrorKind.NotElevated)
                    RecordAudit(new AuditRecord { ActionName = MyInvocation.MyCommand.Name, Result = AuditResult.Refused, ErrorId = e.Kind.ToString(), Error = e.Message });
                ThrowFailure(e, null);
            }
            catch (Exception e) when (e is System.IO.IOException || e is UnauthorizedAccessException)
            {
                ThrowFailure(new HotpatchException(HotpatchErrorKind.AuditFailed,
                    "The audit log " + AuditLog.Machine.Path + " cannot be written (" + e.Message + "); nothing is changed without a record.", e), null);
            }
        }

        /// <summary>
        /// Reports a target that the cmdlet refused before asking the engine to change it (the engine records its own
        /// outcomes), and records the refusal.
        /// </summary>
        internal void WriteRefusal(HotpatchException e, int pid, AuditAction action, string patchId, Micropatch? patch = null, string? processName = null, string? module = null)
        {
            RecordAudit(new AuditRecord
            {
                Action = action, Result = AuditRecord.ResultFor(e.Kind), PatchId = patchId, ProcessId = pid, ProcessName = processName,
                Module = module ?? patch?.Target.Module, FileSha256 = patch?.FileSha256, Path = patch?.SourceName, Signer = patch?.Signature?.Signer,
                Thumbprint = patch?.Signature?.Thumbprint, SignatureStatus = patch?.Signature?.Status.ToString(), ErrorId = e.Kind.ToString(), Error = e.Message,
            });
            WriteFailure(e, pid);
        }

        /// <summary>Appends to the machine's audit trail; a record that cannot be written is a warning, never a lost outcome.</summary>
        internal void RecordAudit(AuditRecord record)
        {
            // -WhatIf tries nothing, so it refuses nothing: a preview recorded as "Install Refused NotSigned" would tell an
            // auditor that someone tried to install the file. A session refused for want of elevation is still recorded.
            if (WhatIfRequested() && record.ErrorId != nameof(HotpatchErrorKind.NotElevated)) return;
            // In a remote (JEA) session the account is a virtual one: the connected user is who acted.
            if (GetVariableValue("PSSenderInfo") is PSSenderInfo sender && sender.UserInfo?.Identity?.Name is string remote && remote.Length > 0)
                record.ConnectedUser = remote;
            // Over SSH (pwsh -sshs, or a shell in an SSH login) PSRP knows no user: sshd says who connected and from where.
            else if (SshClient() is string ssh)
                record.ConnectedUser = Environment.UserName + " via SSH from " + ssh;
            try { AuditTrail.Record(record); }
            catch (HotpatchException e) { WriteWarning(e.Message); }
        }

        /// <summary>"ADDRESS port PORT" of the SSH client this process serves, from sshd's environment; null outside SSH.</summary>
        private static string? SshClient()
        {
            var fields = (Environment.GetEnvironmentVariable("SSH_CONNECTION") ?? Environment.GetEnvironmentVariable("SSH_CLIENT") ?? "")
                .Split(new[] { ' ' }, StringSplitOptions.RemoveEmptyEntries);
            return fields.Length >= 2 ? fields[0] + " port " + fields[1] : null;
        }

        /// <summary>A cmdlet's -DebugDirectory, as full paths, for the engine calls made until the result is disposed.</summary>
        internal IDisposable UseDebugDirectories(string[]? directories) =>
            global::HotpatchTools.Engine.Modules.DebugFiles.Use(directories?.Select(d => SessionState.Path.GetUnresolvedProviderPathFromPSPath(d)));

        /// <summary>
        /// Provider paths for -Path, wildcards expanded; a path that matches nothing is an error record. A wildcard
        /// that matches no file is one too: these paths are the command's whole input, and a script whose
        /// ./patches/*.micropatch.yaml is empty must not look as if it had patched (or checked) something.
        /// </summary>
        /// <param name="notFoundId">The ErrorId of a path that names nothing: these are patch files unless the caller says otherwise.</param>
        internal IEnumerable<string> ResolvePaths(IEnumerable<string> paths, bool literal, bool foldersAllowed = false, string notFoundId = "PatchFileNotFound")
        {
            foreach (var p in paths)
            {
                var resolved = new List<string>();
                ProviderInfo? provider = null;
                try
                {
                    if (literal)
                    {
                        string full = SessionState.Path.GetUnresolvedProviderPathFromPSPath(p, out provider, out _);
                        if (!IsFileSystem(provider)) { NotAFilePath(p, provider); continue; }
                        // Else the parser's "file not found" (InvalidPatchFile, InvalidData) would tell a missing file as a bad one.
                        if (!System.IO.File.Exists(full) && !System.IO.Directory.Exists(full))
                            throw new ItemNotFoundException("Cannot find path '" + full + "' because it does not exist.");
                        resolved.Add(full);
                    }
                    else
                    {
                        string full = SessionState.Path.GetUnresolvedProviderPathFromPSPath(p, out provider, out _);
                        if (!IsFileSystem(provider)) { NotAFilePath(p, provider); continue; }
                        // A file of Get-ChildItem binds its FullName or PSPath to these wildcard -Path parameters: one named
                        // "HP[1].micropatch.yaml" is that file, not the pattern "HP1.micropatch.yaml", which matches nothing or
                        // another file. Only brackets: "*" and "?" in a name are rare, and ./HP-*.micropatch.yaml means every match.
                        if (p.IndexOfAny(new[] { '*', '?' }) < 0 && WildcardPattern.ContainsWildcardCharacters(p) && System.IO.File.Exists(full)) resolved.Add(full);
                        else resolved.AddRange(GetResolvedProviderPathFromPSPath(p, out _));
                    }
                    if (resolved.Count == 0)
                        throw new ItemNotFoundException("No file matches the path '" + p + "'.");
                }
                catch (ItemNotFoundException e)
                {
                    WriteError(OnThisComputer(new ErrorRecord(e, notFoundId, ErrorCategory.ObjectNotFound, p)));
                    continue;
                }
                // A drive or provider that does not exist is this path's problem, not the end of the command's other paths.
                catch (SessionStateException e)
                {
                    WriteError(OnThisComputer(new ErrorRecord(e, notFoundId, ErrorCategory.ObjectNotFound, p)));
                    continue;
                }
                foreach (var r in resolved)
                {
                    // Opening a folder as a file fails with "access denied", which sends an admin after permissions.
                    if (!foldersAllowed && System.IO.Directory.Exists(r))
                    {
                        WriteError(OnThisComputer(new ErrorRecord(new System.IO.IOException(r + " is a folder, not a micropatch file; name the files, for example "
                            + System.IO.Path.Combine(p, "*" + HotpatchTools.Completion.MicropatchPathCompleter.Extension) + "."), "PatchFileIsFolder", ErrorCategory.InvalidArgument, p)));
                        continue;
                    }
                    // Signed patches keep their detached signature beside them: "Get-ChildItem ./patches | Install-Micropatch"
                    // hands it over too, and parsed as a patch it reads as "not valid UTF-8" (or, to the trust check, as an unsigned patch).
                    string? signed = SignedBy(r);
                    if (!foldersAllowed && signed != null)
                    {
                        WriteError(OnThisComputer(new ErrorRecord(new System.IO.IOException(r + " is the signature of " + signed + ", not a micropatch file; name the patch files, for example "
                            + System.IO.Path.Combine(System.IO.Path.GetDirectoryName(r) ?? "", "*" + HotpatchTools.Completion.MicropatchPathCompleter.Extension) + "."), "PatchFileIsSignature", ErrorCategory.InvalidArgument, p)));
                        continue;
                    }
                    yield return r;
                }
            }
        }

        private static bool IsFileSystem(ProviderInfo? provider) =>
            provider != null && string.Equals(provider.Name, "FileSystem", StringComparison.OrdinalIgnoreCase);

        /// <summary>Env:, Variable:, Cert: ... hold no files: their item names read as "file not found" to the parser.</summary>
        private void NotAFilePath(string path, ProviderInfo? provider) =>
            WriteError(OnThisComputer(new ErrorRecord(new ArgumentException("'" + path + "' is not a file system path (it is in the " + provider?.Name + " provider); name files."),
                "PathNotFileSystem", ErrorCategory.InvalidArgument, path)));

        /// <summary>The patch file whose detached signature <paramref name="path"/> is, or null.</summary>
        private static string? SignedBy(string path)
        {
            const string suffix = ".sig";
            if (!path.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) || path.Length == suffix.Length) return null;
            string patch = path.Substring(0, path.Length - suffix.Length);
            return System.IO.File.Exists(patch) && PatchSignature.SignatureFileFor(patch) == path ? patch : null;
        }

        internal static string Describe(int pid, string processName, string module) => "pid " + pid + " (" + processName + ") " + module;

        /// <summary>ShouldProcess, except that -Force skips the prompt (never -WhatIf).</summary>
        internal bool ShouldWrite(bool force, string target, string action)
        {
            if (force && !WhatIfRequested()) return true;
            try
            {
                return ShouldProcess(target, action);
            }
            // An unattended run (a scheduled task, pwsh -NonInteractive, a remote script) cannot answer the prompt; the
            // host's own message ("PowerShell is in NonInteractive mode") does not say what to do about it.
            catch (Exception e) when (e is PSInvalidOperationException || e is System.Management.Automation.Host.HostException)
            {
                ThrowTerminatingError(OnThisComputer(new ErrorRecord(new PSInvalidOperationException(
                    action + " on " + target + " needs confirmation, and this session cannot ask for it (" + e.Message.TrimEnd('.') + "). "
                    + "Add -Force (or -Confirm:$false) to run it unattended; -WhatIf shows what it would do.", e),
                    "ConfirmationNotPossible", ErrorCategory.InvalidOperation, target)));
                return false;
            }
        }

        /// <summary>
        /// True when <see cref="ShouldWrite"/> will ask no one (-Force, -Confirm:$false, $ConfirmPreference None) and it is
        /// no -WhatIf: then several processes may be worked on at once, as no answer must come before the next one is touched.
        /// </summary>
        internal bool WritesWithoutAsking(bool force)
        {
            if (WhatIfRequested()) return false;
            if (force) return true;
            if (MyInvocation.BoundParameters.TryGetValue("Confirm", out var c)) return !((SwitchParameter)c).IsPresent;
            // Install and Uninstall confirm at High impact: only None keeps ShouldProcess from asking.
            return GetVariableValue("ConfirmPreference") is object pref && LanguagePrimitives.TryConvertTo<ConfirmImpact>(pref, out var impact) && impact == ConfirmImpact.None;
        }

        private bool WhatIfRequested()
        {
            if (MyInvocation.BoundParameters.TryGetValue("WhatIf", out var w)) return ((SwitchParameter)w).IsPresent;
            return GetVariableValue("WhatIfPreference") is object v && LanguagePrimitives.IsTrue(v);
        }

        internal ProgressRecord? Progress(int activityId, string activity, int done, int total, string status)
        {
            if (total < 2) return null;
            var r = new ProgressRecord(activityId, activity, status) { PercentComplete = Math.Min(100, done * 100 / total) };
            WriteProgress(r);
            return r;
        }

        internal void CompleteProgress(int activityId, string activity)
        {
            WriteProgress(new ProgressRecord(activityId, activity, "Done") { RecordType = ProgressRecordType.Completed });
        }
    }
}
