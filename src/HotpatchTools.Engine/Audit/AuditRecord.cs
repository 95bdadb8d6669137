using System.Globalization;
using static HotpatchTools.Engine.Platform.HostOs;

namespace HotpatchTools.Engine.Audit
{
    /// <summary>How an audited action ended; written to the log by name.</summary>
    public enum AuditResult
    {
        // First, so that a record nobody finished reads as a failure, never as a success.
        /// <summary>Anything but a check saying no before anything was written.</summary>
        Failed,
        Installed,
        Removed,
        /// <summary>A check said no before anything was written.</summary>
        Refused,
        /// <summary>A trusted publisher was added.</summary>
        Added,
    }

    /// <summary>What an audited record did; written to the log by name.</summary>
    public enum AuditAction
    {
        /// <summary>
        /// Named by text alone (<see cref="AuditRecord.ActionName"/>): a refusal before any work (not elevated) names the
        /// cmdlet that was refused, and a log written elsewhere may hold an action this version does not know.
        /// </summary>
        Other,
        Install,
        Uninstall,
        AddTrustedPublisher,
        RemoveTrustedPublisher,
    }

    /// <summary>One install, uninstall or refusal, as one line of the machine's audit log.</summary>
    public sealed class AuditRecord
    {
        private string _otherAction = "";

        public DateTime TimeUtc { get; set; } = DateTime.UtcNow;
        public string User { get; set; } = CurrentUser();
        public string Host { get; set; } = Environment.MachineName;
        /// <summary>
        /// Who is behind the account the command runs as: the user of a remote (e.g. JEA) session, or on Linux the user
        /// who ran sudo.
        /// </summary>
        public string? ConnectedUser { get; set; } = IsWindows ? null : NullIfEmpty(Environment.GetEnvironmentVariable("SUDO_USER"));
        public AuditAction Action { get; set; }

        /// <summary>
        /// The action as the log writes it: the name of <see cref="Action"/>, or for <see cref="AuditAction.Other"/> the
        /// text it was given. Setting a known name sets <see cref="Action"/>; any other text makes it Other.
        /// </summary>
        public string ActionName
        {
            get => Action == AuditAction.Other ? _otherAction : Action.ToString();
            set
            {
                // Only a name exactly as written: a number or a list would parse as some value, and text kept as Other reads back as it was.
                bool known = Enum.TryParse(value, false, out AuditAction action) && Enum.IsDefined(typeof(AuditAction), action) && action != AuditAction.Other && action.ToString() == value;
                Action = known ? action : AuditAction.Other;
                _otherAction = known ? "" : value;
            }
        }
        public AuditResult Result { get; set; }
        public string? PatchId { get; set; }
        public string? FileSha256 { get; set; }
        public string? Path { get; set; }
        public string? Signer { get; set; }
        public string? Thumbprint { get; set; }
        public string? SignatureStatus { get; set; }
        public int? ProcessId { get; set; }
        public string? ProcessName { get; set; }
        public string? Module { get; set; }
        /// <summary>The HotpatchErrorKind of a refusal or failure.</summary>
        public string? ErrorId { get; set; }
        public string? Error { get; set; }

        /// <summary>Refused when a check said no before anything was written; Failed for anything else.</summary>
        public static AuditResult ResultFor(HotpatchErrorKind? kind) =>
            kind is HotpatchErrorKind.IdentityMismatch or HotpatchErrorKind.ExpectMismatch or HotpatchErrorKind.UnsafeSite
                or HotpatchErrorKind.ThreadInSpan or HotpatchErrorKind.AlreadyInstalled or HotpatchErrorKind.NotInstalled or HotpatchErrorKind.SiteModified
                or HotpatchErrorKind.ModuleNotLoaded or HotpatchErrorKind.InvalidPatchFile or HotpatchErrorKind.AssemblyError
                or HotpatchErrorKind.NotSigned or HotpatchErrorKind.HashMismatch or HotpatchErrorKind.SignatureInvalid
                or HotpatchErrorKind.UntrustedPublisher or HotpatchErrorKind.TrustStoreError or HotpatchErrorKind.NotElevated
                or HotpatchErrorKind.SuspiciousProcess
                ? AuditResult.Refused : AuditResult.Failed;

        private sealed class UnixUser
        {
            public uint Uid;
            public string Name = "";
        }

        private static UnixUser? _unixUser;

        public static string CurrentUser()
        {
            try
            {
                if (IsWindows) return Environment.UserDomainName + "\\" + Environment.UserName;
                // A machine-wide install writes a record per process, and the name lookup reads /etc/passwd each time:
                // kept while the effective uid is the same.
                uint uid = Platform.Linux.LibC.geteuid();
                var known = _unixUser;
                if (known != null && known.Uid == uid) return known.Name;
                var name = Environment.UserName;
                _unixUser = new UnixUser { Uid = uid, Name = name };
                return name;
            }
            catch (Exception e) when (e is InvalidOperationException || e is PlatformNotSupportedException) { return "uid " + Environment.GetEnvironmentVariable("USER"); }
        }

        private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

        public IEnumerable<KeyValuePair<string, object?>> Fields()
        {
            KeyValuePair<string, object?> F(string k, object? v) => new KeyValuePair<string, object?>(k, v);
            yield return F("time", TimeUtc.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
            yield return F("user", User);
            yield return F("host", Host);
            yield return F("connectedUser", ConnectedUser);
            yield return F("action", ActionName);
            yield return F("result", Result.ToString());
            yield return F("patchId", PatchId);
            yield return F("fileSha256", FileSha256);
            yield return F("path", Path);
            yield return F("signer", Signer);
            yield return F("thumbprint", Thumbprint);
            yield return F("signatureStatus", SignatureStatus);
            yield return F("processId", ProcessId);
            yield return F("processName", ProcessName);
            yield return F("module", Module);
            yield return F("errorId", ErrorId);
            yield return F("error", Error);
        }

        public string ToJson() => JsonLine.Write(Fields());

        /// <summary>A record read back from a log line, or null if the line is not one.</summary>
        public static AuditRecord? FromJson(string line)
        {
            var o = JsonLine.Parse(line);
            if (o == null || !o.TryGetValue("time", out var t) || !(t is string time)) return null;
            if (!DateTime.TryParse(time, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var when)) return null;
            string? S(string k) => o.TryGetValue(k, out var v) && v != null ? Convert.ToString(v, CultureInfo.InvariantCulture) : null;
            // Only a name: a number would parse as any value, and a result this version does not know makes no record.
            var named = S("result");
            if (named == null || named.Length == 0 || !char.IsLetter(named[0]) || !Enum.TryParse(named, false, out AuditResult result)) return null;
            return new AuditRecord
            {
                TimeUtc = DateTime.SpecifyKind(when, DateTimeKind.Utc), User = S("user") ?? "", Host = S("host") ?? "", ConnectedUser = S("connectedUser"),
                ActionName = S("action") ?? "", Result = result, PatchId = S("patchId"), FileSha256 = S("fileSha256"), Path = S("path"),
                Signer = S("signer"), Thumbprint = S("thumbprint"), SignatureStatus = S("signatureStatus"),
                ProcessId = o.TryGetValue("processId", out var p) && p is long pid ? (int?)pid : null,
                ProcessName = S("processName"), Module = S("module"), ErrorId = S("errorId"), Error = S("error"),
            };
        }

        /// <summary>The refusal of a patch file by the trust policy, before any process was looked at.</summary>
        public static AuditRecord ForRefusal(Trust.PatchRefusedException e) => new AuditRecord
        {
            Action = AuditAction.Install, Result = AuditResult.Refused, PatchId = e.PatchId, FileSha256 = e.Signature.FileSha256, Path = e.Signature.Path,
            Signer = e.Signature.Signer, Thumbprint = e.Signature.Thumbprint, SignatureStatus = e.Signature.Status.ToString(),
            ErrorId = e.Kind.ToString(), Error = e.Message,
        };
    }
}
