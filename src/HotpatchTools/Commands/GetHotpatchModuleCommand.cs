using HotpatchTools.Completion;
using HotpatchTools.Engine.Inspection;

namespace HotpatchTools.Commands
{
    /// <summary>The modules loaded in running processes, with where they are and the identity patch files bind to.</summary>
    [Cmdlet(VerbsCommon.Get, "HotpatchModule")]
    [OutputType(typeof(HotpatchModule))]
    public sealed class GetHotpatchModuleCommand : HotpatchCommandBase
    {
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("Id", "PID")]
        [ValidateRange(1, int.MaxValue)]
        [ArgumentCompleter(typeof(ProcessIdCompleter))]
        public int[] ProcessId { get; set; } = new int[0];

        /// <summary>Only modules with these file names. Not bound from the pipeline: a process object's Name is the process's.</summary>
        [Parameter(Position = 1)]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string[]? Name { get; set; }

        // Piped targets repeat a process (Get-HotpatchTarget: one row per patch and process): each is read once.
        private readonly HashSet<int> _read = new HashSet<int>();

        protected override void ProcessRecord()
        {
            var patterns = Name?.Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToList();
            var inspector = new ProcessInspector(Engine.Platform);
            foreach (int pid in ProcessId)
            {
                if (!_read.Add(pid)) continue;
                try
                {
                    foreach (var m in inspector.GetModules(pid))
                        if (patterns == null || patterns.Any(p => p.IsMatch(m.Name)))
                            WriteObject(HotpatchModule.From(m));
                }
                catch (HotpatchException e) { WriteFailure(e, pid); }
            }
        }
    }
}
