namespace HotpatchTools.Engine.Patching
{
    /// <summary>What an install does with a target in a given state.</summary>
    public enum InstallAction
    {
        /// <summary>Every check passed: install.</summary>
        Install,
        /// <summary>The goal is met already: nothing to do.</summary>
        AlreadyPatched,
        /// <summary>A patch that supersedes this one holds: nothing to do.</summary>
        Superseded,
        /// <summary>Another build of the module: the patch does not apply there, which is no failure.</summary>
        OtherBuild,
        /// <summary>A check refuses the target: a failure to report.</summary>
        Refuse,
    }

    /// <summary>
    /// The one table from an inspected state to an install's action, shared by Install-Micropatch and the enforcer
    /// so that a state added to <see cref="TargetState"/> is decided in one place.
    /// </summary>
    public static class InstallDecision
    {
        public static InstallAction For(TargetState state) => state switch
        {
            TargetState.Vulnerable => InstallAction.Install,
            TargetState.Patched => InstallAction.AlreadyPatched,
            TargetState.Superseded => InstallAction.Superseded,
            TargetState.Mismatch => InstallAction.OtherBuild,
            _ => InstallAction.Refuse,
        };
    }
}
