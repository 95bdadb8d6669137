using System.Collections.ObjectModel;
using System.Management.Automation;
using System.Management.Automation.Runspaces;

namespace HotpatchTools.Tests.Support
{
    /// <summary>A hosted runspace that runs scripts as a user types them and keeps what each run wrote to its streams.</summary>
    public abstract class HostedShell : IDisposable
    {
        private Runspace? _runspace;

        protected void Open(Runspace runspace)
        {
            runspace.Open();
            _runspace = runspace;
        }

        public ErrorRecord[] Errors { get; private set; } = new ErrorRecord[0];
        public string[] Warnings { get; private set; } = new string[0];
        public string[] Verbose { get; private set; } = new string[0];

        /// <summary>Runs a script; $args holds the arguments. Records the error, warning and verbose streams.</summary>
        public Collection<PSObject> Run(string script, params object[] args)
        {
            using var ps = PowerShell.Create();
            ps.Runspace = _runspace ?? throw new InvalidOperationException("the runspace is not open");
            ps.AddScript(script);
            foreach (var a in args) ps.AddArgument(a);
            var result = ps.Invoke();
            Errors = ps.Streams.Error.ToArray();
            Warnings = ps.Streams.Warning.Select(w => w.Message).ToArray();
            Verbose = ps.Streams.Verbose.Select(v => v.Message).ToArray();
            return result;
        }

        /// <summary>Runs a script and fails on any error record: for the steps that set a test up.</summary>
        public Collection<PSObject> RunClean(string script, params object[] args)
        {
            var result = Run(script, args);
            if (Errors.Length > 0) throw new InvalidOperationException(script + "\n=> " + string.Join("\n", Errors.Select(e => e.FullyQualifiedErrorId + ": " + e)));
            return result;
        }

        public virtual void Dispose() => _runspace?.Dispose();
    }
}
