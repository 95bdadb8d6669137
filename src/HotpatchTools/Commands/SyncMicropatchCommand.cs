using System.Globalization;
using System.Threading;
using HotpatchTools.Completion;
using HotpatchTools.Engine.Catalog;
using HotpatchTools.Engine.Format;

namespace HotpatchTools.Commands
{
    /// <summary>
    /// Applies every enabled catalog patch to every running process that has its module loaded, once or (with
    /// -Watch) continuously, and reports one result per process and patch.
    /// </summary>
    [Cmdlet(VerbsData.Sync, "Micropatch", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
    [OutputType(typeof(MicropatchSyncResult))]
    public sealed class SyncMicropatchCommand : CatalogCommandBase
    {
        private readonly CancellationTokenSource _stop = new CancellationTokenSource();
        private readonly HashSet<string> _warnedIds = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        private readonly Dictionary<string, (string Sha256, Micropatch? Patch)> _loaded = new Dictionary<string, (string, Micropatch?)>(StringComparer.OrdinalIgnoreCase);

        /// <summary>Only catalog entries whose id matches (wildcards); without it, every enabled entry.</summary>
        [Parameter(Position = 0)]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(CatalogPatchIdCompleter))]
        public string[]? PatchId { get; set; }

        /// <summary>Keep going until stopped, patching processes started and modules loaded later.</summary>
        [Parameter]
        public SwitchParameter Watch { get; set; }

        /// <summary>Time between passes in watch mode: a TimeSpan, or a number of seconds.</summary>
        [Parameter]
        [SecondsOrTimeSpan]
        public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(2);

        /// <summary>Apply without asking for confirmation (required with -Watch).</summary>
        [Parameter]
        public SwitchParameter Force { get; set; }

        protected override void BeginProcessing()
        {
            if (Interval < TimeSpan.FromMilliseconds(200) || Interval > TimeSpan.FromHours(1))
                ThrowTerminatingError(new ErrorRecord(new PSArgumentOutOfRangeException(nameof(Interval), Interval, "-Interval must be between 0.2 seconds and 1 hour."),
                    "IntervalOutOfRange", ErrorCategory.InvalidArgument, Interval));
            // A service or scheduled task has nobody to answer a prompt; a prompt every pass would stall it.
            if (Watch && !Force && !MyInvocation.BoundParameters.ContainsKey("WhatIf"))
                ThrowTerminatingError(new ErrorRecord(new PSArgumentException("-Watch runs unattended and cannot ask for confirmation: add -Force (or -WhatIf to only report)."),
                    "WatchRequiresForce", ErrorCategory.InvalidArgument, null));
            RequireElevation("Sync-Micropatch");
        }

        protected override void ProcessRecord()
        {
            var enforcer = new Enforcer(Engine, WriteDebug);
            Func<Engine.Patching.TargetStatus, bool> confirm = s =>
                ShouldWrite(Force, Describe(s.ProcessId, s.ProcessName, s.Module), "Install micropatch " + s.PatchId);

            if (!Watch)
            {
                var patches = Patches(warnIfNone: true);
                if (patches.Count == 0) return;
                var pass = enforcer.Run(patches, apply: true, confirm: confirm);
                WriteVerbose(Summary(pass));
                WarnSuspicious(pass.Results);
                foreach (var r in pass.Results) WriteObject(MicropatchSyncResult.From(r));
                return;
            }

            bool warned = false;
            enforcer.Watch(() =>
            {
                var p = Patches(warnIfNone: !warned);
                warned |= p.Count == 0;
                return p;
            }, Interval, pass =>
            {
                WriteVerbose(Summary(pass));
                WarnSuspicious(pass.Changed);
                foreach (var r in pass.Changed) WriteObject(MicropatchSyncResult.From(r));
            }, _stop.Token, confirm);
        }

        /// <summary>A process that forges caves is named in a warning, not only in a result's Reason.</summary>
        private void WarnSuspicious(System.Collections.Generic.IEnumerable<EnforcementResult> results)
        {
            foreach (var r in results)
                if (r.ErrorKind == HotpatchErrorKind.SuspiciousProcess) WriteWarning(r.Reason);
        }

        // Ctrl+C, Stop() of a hosted pipeline, or the end of a service: the pass in progress finishes (it may be
        // holding a process stopped), then the loop ends without waiting out the interval.
        protected override void StopProcessing() => _stop.Cancel();

        private static string Summary(EnforcementPass pass) =>
            (pass.Full ? "full" : "incremental") + " pass: " + pass.ProcessCount + " processes, " + pass.Results.Count + " inspected, " + pass.Unchanged + " unchanged, " +
            pass.Unreadable + " unreadable, " + pass.Elapsed.TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture) + " ms";

        /// <summary>
        /// The enabled entries that match -PatchId, loaded (each file once per version: a pass every few seconds
        /// must not re-read and re-verify unchanged files). A broken entry is reported once per version.
        /// </summary>
        private List<Micropatch> Patches(bool warnIfNone)
        {
            var patches = new List<Micropatch>();
            var entries = SelectEntries(PatchId, (folder, why) => WriteWarning("Catalog folder " + folder + " is not a readable entry: " + why));
            foreach (var e in entries.Where(e => e.Enabled))
            {
                if (!_loaded.TryGetValue(e.PatchId, out var cached) || cached.Sha256 != e.FileSha256)
                    _loaded[e.PatchId] = cached = (e.FileSha256, LoadCatalogPatch(e));
                if (cached.Patch != null) patches.Add(cached.Patch);
            }
            if (patches.Count == 0 && warnIfNone)
                WriteWarning("No enabled catalog patch" + (PatchId != null ? " matches " + string.Join(", ", PatchId) : "") + " (catalog: " + Catalog.Directory + ").");
            // -PatchId HP-A, HP-B where only HP-A is registered and enabled: HP-B (a typo, or disabled) is named, once a command.
            else if (patches.Count > 0 && PatchId != null)
            {
                var unmatched = PatchId.Where(id => !entries.Any(e => e.Enabled && new WildcardPattern(id, WildcardOptions.IgnoreCase).IsMatch(e.PatchId)) && _warnedIds.Add(id)).ToList();
                if (unmatched.Count > 0)
                    WriteWarning("No enabled catalog patch matches " + string.Join(", ", unmatched) + " (catalog: " + Catalog.Directory + ").");
            }
            return patches;
        }
    }

    /// <summary>Lets a parameter of type TimeSpan take a plain number as seconds (a number would otherwise be ticks).</summary>
    public sealed class SecondsOrTimeSpanAttribute : ArgumentTransformationAttribute
    {
        public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
        {
            var value = inputData is PSObject pso ? pso.BaseObject : inputData;
            switch (value)
            {
                case TimeSpan t: return t;
                case int i: return TimeSpan.FromSeconds(i);
                case long l: return TimeSpan.FromSeconds(l);
                case double d: return TimeSpan.FromSeconds(d);
                case decimal m: return TimeSpan.FromSeconds((double)m);
                case string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var secs): return TimeSpan.FromSeconds(secs);
                default: return inputData;
            }
        }
    }
}
