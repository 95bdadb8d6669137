using System.Collections.ObjectModel;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Host;
using System.Security;
using System.Text;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// A host whose console is a string, 80 columns wide. Out-String and Format-Table are not in the core set a
    /// hosted runspace has, but Out-Host is: formatting through it shows what an admin's console would show.
    /// </summary>
    public sealed class CaptureHost : PSHost
    {
        private readonly CaptureUI _ui;

        public CaptureHost() => _ui = new CaptureUI(this);

        /// <summary>Answers a choice prompt (a confirmation): the prompt's message and choices in, the index chosen out.</summary>
        public Func<string, Collection<ChoiceDescription>, int>? AnswerChoice { get; set; }
        public override string Name => "HotpatchTools.Tests.CaptureHost";
        public override Version Version => new Version(1, 0);
        public override Guid InstanceId { get; } = Guid.NewGuid();
        public override PSHostUserInterface UI => _ui;
        public override CultureInfo CurrentCulture => CultureInfo.InvariantCulture;
        public override CultureInfo CurrentUICulture => CultureInfo.InvariantCulture;
        public override void SetShouldExit(int exitCode) { }
        public override void EnterNestedPrompt() => throw new NotSupportedException();
        public override void ExitNestedPrompt() => throw new NotSupportedException();
        public override void NotifyBeginApplication() { }
        public override void NotifyEndApplication() { }

        /// <summary>What the console showed since the last call.</summary>
        public string TakeOutput()
        {
            lock (_ui.Text)
            {
                var s = _ui.Text.ToString();
                _ui.Text.Clear();
                return s;
            }
        }

        private sealed class CaptureUI : PSHostUserInterface
        {
            public readonly StringBuilder Text = new StringBuilder();
            private readonly RawUI _raw = new RawUI();
            private readonly CaptureHost _host;

            public CaptureUI(CaptureHost host) => _host = host;

            public override PSHostRawUserInterface RawUI => _raw;
            public override void Write(string value) { lock (Text) Text.Append(value); }
            public override void Write(ConsoleColor foregroundColor, ConsoleColor backgroundColor, string value) => Write(value);
            public override void WriteLine(string value) => Write(value + "\n");
            public override void WriteErrorLine(string value) { }
            public override void WriteDebugLine(string message) { }
            public override void WriteProgress(long sourceId, ProgressRecord record) { }
            public override void WriteVerboseLine(string message) { }
            public override void WriteWarningLine(string message) { }
            // No one answers prompts in a test (but the choices AnswerChoice is given for): a command that asks fails,
            // as it would in a non-interactive session.
            public override string ReadLine() => throw new NotSupportedException();
            public override SecureString ReadLineAsSecureString() => throw new NotSupportedException();
            public override Dictionary<string, PSObject> Prompt(string caption, string message, Collection<FieldDescription> descriptions) => throw new NotSupportedException();
            public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName) => throw new NotSupportedException();
            public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName, PSCredentialTypes allowedCredentialTypes, PSCredentialUIOptions options) => throw new NotSupportedException();
            public override int PromptForChoice(string caption, string message, Collection<ChoiceDescription> choices, int defaultChoice) =>
                _host.AnswerChoice != null ? _host.AnswerChoice(message, choices) : throw new NotSupportedException();
        }

        private sealed class RawUI : PSHostRawUserInterface
        {
            public override ConsoleColor ForegroundColor { get; set; } = ConsoleColor.Gray;
            public override ConsoleColor BackgroundColor { get; set; } = ConsoleColor.Black;
            public override Coordinates CursorPosition { get; set; }
            public override Coordinates WindowPosition { get; set; }
            public override int CursorSize { get; set; }
            public override Size BufferSize { get; set; } = new Size(80, 9999);
            public override Size WindowSize { get; set; } = new Size(80, 50);
            public override Size MaxWindowSize => new Size(80, 50);
            public override Size MaxPhysicalWindowSize => new Size(80, 50);
            public override bool KeyAvailable => false;
            public override string WindowTitle { get; set; } = "";
            public override KeyInfo ReadKey(ReadKeyOptions options) => throw new NotSupportedException();
            public override void FlushInputBuffer() { }
            public override void SetBufferContents(Coordinates origin, BufferCell[,] contents) { }
            public override void SetBufferContents(Rectangle rectangle, BufferCell fill) { }
            public override BufferCell[,] GetBufferContents(Rectangle rectangle) => throw new NotSupportedException();
            public override void ScrollBufferContents(Rectangle source, Coordinates destination, Rectangle clip, BufferCell fill) { }
        }
    }
}
