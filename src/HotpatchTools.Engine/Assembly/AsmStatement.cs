namespace HotpatchTools.Engine.Assembly
{
    /// <summary>The shape of one source line: labels, prefixes, mnemonic and the tokens of each operand.</summary>
    internal sealed class AsmStatement
    {
        private static readonly HashSet<string> PrefixNames = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
        {
            "lock", "rep", "repe", "repz", "repne", "repnz",
        };

        private AsmStatement(SourceLine line) { Line = line; }

        public SourceLine Line { get; }
        public List<Token> Labels { get; } = new List<Token>();
        public List<Token> Prefixes { get; } = new List<Token>();
        /// <summary>Absent on a line that only defines labels.</summary>
        public Token? Mnemonic { get; private set; }
        public List<List<Token>> Operands { get; } = new List<List<Token>>();

        public static AsmStatement Parse(SourceLine line)
        {
            var tokens = AsmLexer.Lex(line);
            var statement = new AsmStatement(line);
            int i = 0;
            while (i + 1 < tokens.Count && tokens[i].IsIdentifier && tokens[i + 1].IsPunct(':'))
            {
                statement.Labels.Add(tokens[i]);
                i += 2;
            }
            while (i < tokens.Count && tokens[i].IsIdentifier && PrefixNames.Contains(tokens[i].Text))
                statement.Prefixes.Add(tokens[i++]);

            if (i == tokens.Count)
            {
                if (statement.Prefixes.Count > 0)
                {
                    var last = statement.Prefixes[statement.Prefixes.Count - 1];
                    throw line.Error(last.Column, "expected an instruction after '" + last.Text + "'");
                }
                return statement;
            }
            if (!tokens[i].IsIdentifier)
                throw line.Error(tokens[i].Column, "expected an instruction, found '" + tokens[i].Text + "'");
            statement.Mnemonic = tokens[i++];
            statement.SplitOperands(tokens, i);
            return statement;
        }

        private void SplitOperands(List<Token> tokens, int start)
        {
            if (start == tokens.Count)
                return;
            var current = new List<Token>();
            Token? openBracket = null;
            for (int i = start; i < tokens.Count; i++)
            {
                var token = tokens[i];
                if (token.IsPunct('['))
                {
                    if (openBracket != null)
                        throw Line.Error(token.Column, "'[' inside a memory operand; close the first '[' with ']'");
                    openBracket = token;
                }
                else if (token.IsPunct(']'))
                {
                    if (openBracket == null)
                        throw Line.Error(token.Column, "']' without a matching '['");
                    openBracket = null;
                }
                else if (token.IsPunct(',') && openBracket == null)
                {
                    AddOperand(current, token.Column);
                    current = new List<Token>();
                    continue;
                }
                current.Add(token);
            }
            if (openBracket != null)
                throw Line.Error(openBracket.Value.Column, "'[' without a matching ']'");
            AddOperand(current, tokens[tokens.Count - 1].End);
        }

        private void AddOperand(List<Token> operand, int columnIfEmpty)
        {
            if (operand.Count == 0)
                throw Line.Error(columnIfEmpty, "missing operand");
            Operands.Add(operand);
        }
    }
}
