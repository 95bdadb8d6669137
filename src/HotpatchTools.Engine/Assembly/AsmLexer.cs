using System.Numerics;

namespace HotpatchTools.Engine.Assembly
{
    internal enum TokenKind { Identifier, Number, Punct }

    internal readonly struct Token
    {
        public Token(TokenKind kind, string text, int column, BigInteger value = default)
        {
            Kind = kind; Text = text; Column = column; Value = value;
        }

        public TokenKind Kind { get; }
        public string Text { get; }
        /// <summary>0-based character index of the token in its line.</summary>
        public int Column { get; }
        public int End => Column + Text.Length;
        public BigInteger Value { get; }

        public bool IsPunct(char c) => Kind == TokenKind.Punct && Text[0] == c;
        public bool IsIdentifier => Kind == TokenKind.Identifier;
    }

    /// <summary>One line of assembler text, able to turn a character position into a file-positioned error.</summary>
    internal sealed record SourceLine(string Text, int FileLine, int FirstColumn)
    {
        public AsmException Error(int column, string message) => new AsmException(FileLine, FirstColumn + column, message);

        public string Slice(Token first, Token last) => Text.Substring(first.Column, last.End - first.Column);
    }

    internal static class AsmLexer
    {
        private const string Puncts = ",[]+-*:";

        public static List<Token> Lex(SourceLine line)
        {
            var text = line.Text;
            var tokens = new List<Token>();
            int i = 0;
            while (i < text.Length)
            {
                char c = text[i];
                if (c == ';' || c == '#')
                    break;
                if (char.IsWhiteSpace(c))
                {
                    i++;
                }
                else if (IsIdentStart(c))
                {
                    int end = ScanSymbolEnd(text, i);
                    tokens.Add(new Token(TokenKind.Identifier, text.Substring(i, end - i), i));
                    i = end;
                }
                else if (c >= '0' && c <= '9')
                {
                    int end = i;
                    while (end < text.Length && (char.IsLetterOrDigit(text[end]) || text[end] == '_'))
                        end++;
                    var literal = text.Substring(i, end - i);
                    tokens.Add(new Token(TokenKind.Number, literal, i, ParseNumber(line, literal, i)));
                    i = end;
                }
                else if (c == '\'')
                {
                    if (i + 2 >= text.Length || text[i + 2] != '\'' || text[i + 1] == '\'')
                        throw line.Error(i, "a character literal is one character in single quotes, like 'a'");
                    tokens.Add(new Token(TokenKind.Number, text.Substring(i, 3), i, text[i + 1]));
                    i += 3;
                }
                else if (Puncts.IndexOf(c) >= 0)
                {
                    tokens.Add(new Token(TokenKind.Punct, c.ToString(), i));
                    i++;
                }
                else
                {
                    throw line.Error(i, "unexpected character '" + c + "'");
                }
            }
            return tokens;
        }

        private static bool IsIdentStart(char c) =>
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' || c == '$' || c == '@' || c == '?';

        private static bool IsIdentPart(char c) => IsIdentStart(c) || (c >= '0' && c <= '9');

        /// <summary>
        /// Finds the end of a symbol starting at <paramref name="start"/>. Module-qualified names join module and
        /// symbol with '!', and module names may contain '-' and '+' (ld-linux-x86-64.so.2, libstdc++.so.6), so
        /// those are taken as part of the name when a '!' follows them without spaces, unless the text before the
        /// first '+'/'-' is a register (as in "rax+libc.so.6!getpid").
        /// </summary>
        private static int ScanSymbolEnd(string text, int start)
        {
            int plainEnd = start;
            while (plainEnd < text.Length && IsIdentPart(text[plainEnd]))
                plainEnd++;

            int moduleEnd = plainEnd;
            while (moduleEnd < text.Length && (IsIdentPart(text[moduleEnd]) || text[moduleEnd] == '-' || text[moduleEnd] == '+'))
                moduleEnd++;
            bool qualified = moduleEnd < text.Length && text[moduleEnd] == '!'
                && moduleEnd + 1 < text.Length && IsIdentStart(text[moduleEnd + 1]);
            if (!qualified)
                return plainEnd;
            if (moduleEnd != plainEnd && AsmNames.TryGetRegister(text.Substring(start, plainEnd - start), out _))
                return plainEnd;

            int end = moduleEnd + 1;
            while (end < text.Length && IsIdentPart(text[end]))
                end++;
            return end;
        }

        private static BigInteger ParseNumber(SourceLine line, string literal, int column)
        {
            var digits = literal.Replace("_", "");
            int radix = 10;
            var lower = digits.ToLowerInvariant();
            if (lower.StartsWith("0x", System.StringComparison.Ordinal)) { radix = 16; digits = digits.Substring(2); }
            else if (lower.StartsWith("0b", System.StringComparison.Ordinal)) { radix = 2; digits = digits.Substring(2); }
            else if (lower.EndsWith("h", System.StringComparison.Ordinal)) { radix = 16; digits = digits.Substring(0, digits.Length - 1); }

            if (digits.Length == 0)
                throw line.Error(column, "invalid number '" + literal + "'");
            BigInteger value = BigInteger.Zero;
            foreach (char d in digits)
            {
                int digit = Hex.Digit(d);
                if (digit < 0 || digit >= radix)
                    throw line.Error(column, "invalid number '" + literal + "'");
                value = value * radix + digit;
                if (value > ulong.MaxValue)
                    throw line.Error(column, "number '" + literal + "' is larger than 64 bits");
            }
            return value;
        }
    }
}
