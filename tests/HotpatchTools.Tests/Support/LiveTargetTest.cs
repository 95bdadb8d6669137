namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// A test class against a live target (tests/native) started for each test and killed after, with an engine that
    /// waits only briefly for a thread to leave a span: what the engine's live tests share.
    /// </summary>
    public abstract class LiveEngineTest : IDisposable
    {
        protected readonly TargetProcess _t = TargetProcess.Start();
        protected readonly HotpatchEngine _engine = new HotpatchEngine(options: new EngineOptions { ThreadWait = TimeSpan.FromMilliseconds(300) });

        public virtual void Dispose() => _t.Dispose();

        /// <summary>A patchlet at a symbol of the target whose expect is the bytes there now.</summary>
        protected PatchletSpec At(string symbol, int expectLength, string code = "", string mode = "insert", int offset = 0) =>
            PatchFiles.At(_t, symbol, expectLength, code, mode, offset);
    }

    /// <summary>
    /// A test class that drives the module against a live target: the target, a hosted runspace with the module
    /// imported, and a temporary folder for patch files, each made for a test and gone after it.
    /// </summary>
    public abstract class LiveModuleTest : IDisposable
    {
        protected readonly TargetProcess _t = TargetProcess.Start();
        protected readonly ModuleShell _sh = new ModuleShell();
        protected readonly string _dir;

        /// <param name="folderName">Names the temporary folder (hpt-NAME-*), so a test that leaves one behind is known.</param>
        protected LiveModuleTest(string folderName) => _dir = Directory.CreateTempSubdirectory("hpt-" + folderName + "-").FullName;

        public void Dispose()
        {
            _sh.Dispose();
            _t.Dispose();
            Directory.Delete(_dir, recursive: true);
        }
    }
}
