using System;
using System.Collections.Generic;
using System.Management.Automation;
using HotpatchTools.Engine;
using HotpatchTools.Engine.Format;
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
                    return _engine = new HotpatchEngine(options: new EngineOptions { Log = WriteVerbose });
                }
                catch (HotpatchException e)
                {
                    ThrowTerminatingError(ToErrorRecord(e, null));
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
                default: return ErrorCategory.NotSpecified;
            }
        }

        internal static ErrorRecord ToErrorRecord(HotpatchException e, object? target) =>
            new ErrorRecord(e, ErrorId(e.Kind), Category(e.Kind), target);

        /// <summary>Reports one failed target and lets the command go on with the next.</summary>
        internal void WriteFailure(HotpatchException e, object? target) => WriteError(ToErrorRecord(e, target));

        /// <param name="allowUnsigned">Catalog entries pass their own flag here; accepted now, checked once signing is enforced.</param>
        internal Micropatch? LoadPatch(string path, bool allowUnsigned = false)
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

        /// <summary>Provider paths for -Path, wildcards expanded; a path that matches nothing is an error record.</summary>
        internal IEnumerable<string> ResolvePaths(IEnumerable<string> paths, bool literal)
        {
            foreach (var p in paths)
            {
                var resolved = new List<string>();
                try
                {
                    if (literal) resolved.Add(SessionState.Path.GetUnresolvedProviderPathFromPSPath(p));
                    else resolved.AddRange(GetResolvedProviderPathFromPSPath(p, out _));
                }
                catch (ItemNotFoundException e)
                {
                    WriteError(new ErrorRecord(e, "PatchFileNotFound", ErrorCategory.ObjectNotFound, p));
                    continue;
                }
                foreach (var r in resolved) yield return r;
            }
        }

        internal static string Describe(int pid, string processName, string module) => "pid " + pid + " (" + processName + ") " + module;

        /// <summary>ShouldProcess, except that -Force skips the prompt (never -WhatIf).</summary>
        internal bool ShouldWrite(bool force, string target, string action)
        {
            if (force && !WhatIfRequested()) return true;
            return ShouldProcess(target, action);
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
