using Iced.Intel;

namespace HotpatchTools.Engine.Assembly
{
    /// <summary>Where the assembler text sits in its file, so errors name file positions.</summary>
    internal sealed class AsmSourceInfo
    {
        /// <summary>1-based file line of the code's first line.</summary>
        public int FirstLine { get; set; } = 1;
        /// <summary>1-based file column at which each code line's text starts.</summary>
        public int FirstColumn { get; set; } = 1;
    }

    /// <summary>The result of assembling: Iced instructions ready for a BlockEncoder.</summary>
    internal sealed class AsmProgram
    {
        public AsmProgram(IReadOnlyList<Instruction> instructions) { Instructions = instructions; }

        /// <summary>
        /// Each instruction has a unique synthetic IP (never a real address) so labels can be branch targets
        /// inside one InstructionBlock; branches to `resume`, symbols and numbers carry absolute targets.
        /// </summary>
        public IReadOnlyList<Instruction> Instructions { get; }
    }

    internal sealed class AsmException : HotpatchException
    {
        public AsmException(int line, int column, string message)
            : base(HotpatchErrorKind.AssemblyError, "line " + line + ", column " + column + ": " + message)
        {
            Line = line; Column = column; Detail = message;
        }
        public int Line { get; }
        public int Column { get; }
        public string Detail { get; }
    }

    internal static class IntelAssembler
    {
        // Labels get addresses no code can live at: non-canonical in 64-bit mode. 32-bit mode has no such
        // range, so absolute branch targets inside it are rejected instead.
        private const ulong LabelBase64 = 0xF000_0000_0000_0000;
        private const ulong LabelBase32 = 0xF000_0000;
        private const ulong LabelSpacing = DataDirectives.MaxInstructionsPerLine;

        /// <summary>
        /// Assembles Intel-syntax x86 text, one instruction per line.
        /// resumeTarget: the address the built-in label `resume` stands for.
        /// resolveSymbol: returns the absolute address of a symbol name ("parse_record", "libc.so.6!getpid"),
        /// or null when unknown (the assembler then reports an error naming line and column).
        /// </summary>
        public static AsmProgram Assemble(string code, int bitness, ulong resumeTarget,
            Func<string, ulong?> resolveSymbol, AsmSourceInfo? source = null)
        {
            if (code == null)
                throw new ArgumentNullException(nameof(code));
            if (resolveSymbol == null)
                throw new ArgumentNullException(nameof(resolveSymbol));
            if (bitness != 32 && bitness != 64)
                throw new ArgumentOutOfRangeException(nameof(bitness), bitness, "bitness must be 32 or 64");
            source ??= new AsmSourceInfo();
            ulong labelBase = bitness == 64 ? LabelBase64 : LabelBase32;

            var statements = new List<AsmStatement>();
            var labels = CollectStatements(code, source, labelBase, resumeTarget, statements);

            var scope = new SymbolScope(labels, resumeTarget, resolveSymbol);
            var selector = new FormSelector(bitness);
            var labelEnd = labelBase + LabelSpacing * (ulong)statements.Count;
            var instructions = new List<Instruction>();
            for (int index = 0; index < statements.Count; index++)
            {
                var ip = labelBase + LabelSpacing * (ulong)index;
                var emitted = AssembleStatement(statements[index], bitness, scope, selector, labelBase, labelEnd);
                for (int part = 0; part < emitted.Count; part++)
                {
                    var instruction = emitted[part];
                    instruction.IP = ip + (ulong)part;
                    instructions.Add(instruction);
                }
            }
            return new AsmProgram(instructions);
        }

        /// <summary>First pass: parses every line's shape and gives each label the address of the next instruction.</summary>
        private static Dictionary<string, ulong> CollectStatements(string code, AsmSourceInfo source, ulong labelBase,
            ulong resumeTarget, List<AsmStatement> statements)
        {
            var labels = new Dictionary<string, ulong>(StringComparer.Ordinal);
            var definedOnLine = new Dictionary<string, int>(StringComparer.Ordinal);
            var pending = new List<string>();
            var lines = code.Split('\n');
            for (int index = 0; index < lines.Length; index++)
            {
                var line = new SourceLine(lines[index].TrimEnd('\r'), source.FirstLine + index, source.FirstColumn);
                var statement = AsmStatement.Parse(line);
                foreach (var label in statement.Labels)
                {
                    CheckLabelName(line, label, definedOnLine);
                    definedOnLine[label.Text] = line.FileLine;
                    pending.Add(label.Text);
                }
                if (statement.Mnemonic == null)
                    continue;
                foreach (var name in pending)
                    labels[name] = labelBase + LabelSpacing * (ulong)statements.Count;
                pending.Clear();
                statements.Add(statement);
            }
            // A label after the last instruction is where the patch code ends, i.e. where execution resumes.
            foreach (var name in pending)
                labels[name] = resumeTarget;
            return labels;
        }

        private static void CheckLabelName(SourceLine line, Token label, Dictionary<string, int> definedOnLine)
        {
            var name = label.Text;
            if (name == SymbolScope.ResumeLabel)
                throw line.Error(label.Column, "'resume' is a reserved label: it means the address execution resumes at");
            if (AsmNames.TryGetRegister(name, out _))
                throw line.Error(label.Column, "'" + name + "' is a register and can't be a label");
            if (name.IndexOf('!') >= 0)
                throw line.Error(label.Column, "label '" + name + "' can't contain '!'; that joins a module and a symbol");
            if (definedOnLine.TryGetValue(name, out var firstLine))
                throw line.Error(label.Column, "duplicate label '" + name + "' (first defined on line " + firstLine + ")");
        }

        private static List<Instruction> AssembleStatement(AsmStatement statement, int bitness, SymbolScope scope,
            FormSelector selector, ulong labelBase, ulong labelEnd)
        {
            var line = statement.Line;
            var mnemonicToken = statement.Mnemonic!.Value;
            var name = mnemonicToken.Text;
            bool isData = DataDirectives.TryGetElementSize(name, out int elementSize);
            bool isString = statement.Operands.Count == 0 && StringInstructions.IsStringMnemonic(name);
            var mnemonic = Mnemonic.INVALID;
            if (!isData && !isString && !AsmNames.TryGetMnemonic(name, bitness, out mnemonic))
                throw line.Error(mnemonicToken.Column, "unknown mnemonic '" + name + "'");

            var prefix = PrefixRequest.From(line, statement.Prefixes);
            var parser = new OperandParser(line, bitness, scope);
            var operands = statement.Operands.Select(parser.Parse).ToList();

            if (isData)
            {
                if (statement.Prefixes.Count > 0)
                    throw line.Error(statement.Prefixes[0].Column, "data directives take no prefixes");
                return DataDirectives.Create(line, mnemonicToken, elementSize, operands);
            }
            if (isString)
                return new List<Instruction> { StringInstructions.Create(line, mnemonicToken, bitness, prefix) };

            var instruction = selector.Select(line, mnemonicToken, mnemonic, prefix, operands);
            bool isBranch = instruction.OpCount == 1
                && (instruction.Op0Kind == OpKind.NearBranch64 || instruction.Op0Kind == OpKind.NearBranch32);
            if (isBranch && operands[0].Label == null
                && instruction.NearBranchTarget >= labelBase && instruction.NearBranchTarget < labelEnd)
            {
                throw line.Error(operands[0].Column, "branch target " + operands[0].Text
                    + " lies in the address range the assembler reserves for labels");
            }
            return new List<Instruction> { instruction };
        }
    }
}
