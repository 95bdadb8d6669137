using System.Numerics;
using Iced.Intel;

namespace HotpatchTools.Engine.Assembly
{
    /// <summary>Names that stand for addresses: the code's labels, the built-in `resume` and caller-resolved symbols.</summary>
    internal sealed class SymbolScope
    {
        public const string ResumeLabel = "resume";

        private readonly IReadOnlyDictionary<string, ulong> _labels;
        private readonly ulong _resumeTarget;
        private readonly Func<string, ulong?> _resolveSymbol;
        private readonly Dictionary<string, ulong?> _resolved = new Dictionary<string, ulong?>(StringComparer.Ordinal);

        public SymbolScope(IReadOnlyDictionary<string, ulong> labels, ulong resumeTarget, Func<string, ulong?> resolveSymbol)
        {
            _labels = labels; _resumeTarget = resumeTarget; _resolveSymbol = resolveSymbol;
        }

        public bool TryResolve(string name, out ulong address, out bool isLabel)
        {
            isLabel = false;
            if (name == ResumeLabel)
            {
                address = _resumeTarget;
                return true;
            }
            if (_labels.TryGetValue(name, out address))
            {
                isLabel = true;
                return true;
            }
            if (!_resolved.TryGetValue(name, out var value))
                _resolved[name] = value = _resolveSymbol(name);
            address = value ?? 0;
            return value.HasValue;
        }
    }

    /// <summary>Turns the tokens of one operand into a register, memory reference or immediate.</summary>
    internal sealed class OperandParser
    {
        private static readonly BigInteger TwoTo31 = BigInteger.One << 31;
        private static readonly BigInteger TwoTo32 = BigInteger.One << 32;
        private static readonly BigInteger TwoTo63 = BigInteger.One << 63;
        private static readonly BigInteger TwoTo64 = BigInteger.One << 64;

        private readonly SourceLine _line;
        private readonly int _bitness;
        private readonly SymbolScope _scope;

        public OperandParser(SourceLine line, int bitness, SymbolScope scope)
        {
            _line = line; _bitness = bitness; _scope = scope;
        }

        public AsmOperand Parse(List<Token> tokens)
        {
            int n = tokens.Count;
            int column = tokens[0].Column;
            string text = _line.Slice(tokens[0], tokens[n - 1]);
            int pos = 0;

            Token? sizeToken = null;
            int size = 0;
            if (tokens[0].IsIdentifier && AsmNames.TryGetMemorySize(tokens[0].Text, out size))
            {
                sizeToken = tokens[0];
                pos = 1;
                if (pos < n && tokens[pos].IsIdentifier && string.Equals(tokens[pos].Text, "ptr", StringComparison.OrdinalIgnoreCase))
                    pos++;
            }
            Token? segmentToken = null;
            if (TrySegmentOverride(tokens, pos, n, out var segment))
            {
                segmentToken = tokens[pos];
                pos += 2;
            }

            if (pos < n && tokens[pos].IsPunct('['))
            {
                var memory = ParseMemory(tokens, pos, segment);
                memory.Size = size;
                return AsmOperand.FromMemory(column, text, memory);
            }
            if (sizeToken != null)
                throw _line.Error(sizeToken.Value.Column, "'" + sizeToken.Value.Text + "' applies to memory operands; put the address in [ ]");
            if (segmentToken != null)
                throw _line.Error(segmentToken.Value.Column, "a segment override needs a memory operand in [ ]");

            if (n == 1 && tokens[0].IsIdentifier && AsmNames.TryGetRegister(tokens[0].Text, out var register))
                return AsmOperand.FromRegister(column, text, register);

            var expression = ParseExpression(tokens, 0, n, allowRegisters: false);
            var value = expression.Constant + expression.Address;
            if (value < -TwoTo63 || value >= TwoTo64)
                throw _line.Error(column, "value " + text + " does not fit in 64 bits");
            return AsmOperand.FromImmediate(column, text, value,
                expression.AddressIsLabel ? expression.AddressToken!.Value.Text : null);
        }

        private static bool TrySegmentOverride(List<Token> tokens, int pos, int end, out Register segment)
        {
            segment = Register.None;
            return pos + 1 < end && tokens[pos].IsIdentifier && tokens[pos + 1].IsPunct(':')
                && AsmNames.TryGetRegister(tokens[pos].Text, out segment) && segment.IsSegmentRegister();
        }

        private MemoryRef ParseMemory(List<Token> tokens, int open, Register segment)
        {
            int close = open + 1;
            while (!tokens[close].IsPunct(']'))
                close++;
            if (close != tokens.Count - 1)
                throw _line.Error(tokens[close + 1].Column, "unexpected '" + tokens[close + 1].Text + "' after ']'");

            int start = open + 1;
            if (TrySegmentOverride(tokens, start, close, out var innerSegment))
            {
                if (segment != Register.None)
                    throw _line.Error(tokens[start].Column, "the operand already has a segment override");
                segment = innerSegment;
                start += 2;
            }
            if (start == close)
                throw _line.Error(tokens[open].Column, "empty memory operand");

            var expression = ParseExpression(tokens, start, close, allowRegisters: true);
            var memory = new MemoryRef { Segment = segment };
            AssignRegisters(memory, expression);

            if (memory.IsRipRelative || (memory.IsAbsolute && expression.AddressToken != null && _bitness == 64))
            {
                if (expression.AddressToken == null)
                    throw _line.Error(expression.Registers[0].Token.Column,
                        "[rip + number] would be relative to the relocated patch code; name a symbol or label, like [rip + counter]");
                var target = expression.Address + expression.Constant;
                if (target.Sign < 0 || target >= TwoTo64)
                    throw _line.Error(expression.AddressToken.Value.Column, "address " + _line.Slice(tokens[start], tokens[close - 1]) + " is outside the 64-bit address space");
                memory.Base = Register.RIP;
                memory.Displacement = (ulong)target;
                memory.DisplSize = 8;
                return memory;
            }

            if (expression.AddressIsLabel)
            {
                throw _line.Error(expression.AddressToken!.Value.Column, _bitness == 64
                    ? "labels can't be memory operands except as [label] or [rip + label]"
                    : "labels can't be memory operands in 32-bit code");
            }
            var displacement = expression.Constant + expression.Address;
            var displacementText = _line.Slice(tokens[start], tokens[close - 1]);
            if (memory.IsAbsolute)
            {
                var limit = _bitness == 64 ? TwoTo64 : TwoTo32;
                if (displacement < -(limit >> 1) || displacement >= limit)
                    throw _line.Error(tokens[start].Column, "address " + displacementText + " does not fit in " + _bitness + " bits");
                memory.Displacement = ToBits(displacement, _bitness);
                memory.DisplSize = _bitness / 8;
                return memory;
            }

            var addressRegister = memory.Base != Register.None ? memory.Base : memory.Index;
            bool addressing64 = addressRegister.IsGPR64();
            // A 64-bit address's displacement is sign-extended from 32 bits; a 32-bit address wraps.
            var upper = addressing64 ? TwoTo31 : TwoTo32;
            if (displacement < -TwoTo31 || displacement >= upper)
                throw _line.Error(tokens[start].Column, "displacement in [" + displacementText + "] does not fit in 32 bits");
            memory.Displacement = addressing64 ? ToBits(displacement, 64) : ToBits(displacement, 32);
            memory.DisplSize = displacement.IsZero ? 0 : 1;
            return memory;
        }

        private void AssignRegisters(MemoryRef memory, Expression expression)
        {
            foreach (var term in expression.Registers)
            {
                var reg = term.Register;
                var name = term.Token.Text;
                if (reg == Register.RIP)
                {
                    if (_bitness != 64)
                        throw _line.Error(term.Token.Column, "rip-relative addressing needs 64-bit code");
                    if (term.Scale != null || memory.Base != Register.None || expression.Registers.Count > 1)
                        throw _line.Error(term.Token.Column, "rip can't be combined with other registers or a scale");
                }
                else if (!(reg.IsGPR64() || reg.IsGPR32()))
                {
                    throw _line.Error(term.Token.Column, "'" + name + "' can't be used in an address");
                }
                else if (reg.IsGPR64() && _bitness != 64)
                {
                    throw _line.Error(term.Token.Column, "'" + name + "' needs 64-bit code");
                }
                else
                {
                    var other = memory.Base != Register.None ? memory.Base : memory.Index;
                    if (other != Register.None && other.IsGPR64() != reg.IsGPR64())
                        throw _line.Error(term.Token.Column, "address registers must all be 32-bit or all 64-bit");
                }

                if (term.Scale != null)
                {
                    if (memory.Index != Register.None)
                        throw _line.Error(term.Token.Column, "a memory operand has at most one scaled index register");
                    memory.Index = reg;
                    memory.Scale = (int)term.Scale.Value.Value;
                }
                else if (memory.Base == Register.None)
                {
                    memory.Base = reg;
                }
                else if (memory.Index == Register.None)
                {
                    memory.Index = reg;
                }
                else
                {
                    throw _line.Error(term.Token.Column, "too many registers in a memory operand");
                }
            }
        }

        private sealed class RegisterTerm
        {
            public RegisterTerm(Token token, Register register, Token? scale) { Token = token; Register = register; Scale = scale; }
            public Token Token { get; }
            public Register Register { get; }
            public Token? Scale { get; }
        }

        private sealed class Expression
        {
            public BigInteger Constant;
            public BigInteger Address;
            public Token? AddressToken;
            public bool AddressIsLabel;
            public readonly List<RegisterTerm> Registers = new List<RegisterTerm>();
        }

        /// <summary>Parses a sum of numbers, at most one address (symbol, label or `resume`) and, in [ ], registers.</summary>
        private Expression ParseExpression(List<Token> tokens, int start, int end, bool allowRegisters)
        {
            var e = new Expression();
            int sign = 1;
            bool expectTerm = true;
            for (int i = start; i < end; i++)
            {
                var t = tokens[i];
                if (t.IsPunct('+') || t.IsPunct('-'))
                {
                    int s = t.IsPunct('-') ? -1 : 1;
                    if (expectTerm)
                    {
                        sign *= s;
                    }
                    else
                    {
                        sign = s;
                        expectTerm = true;
                    }
                    continue;
                }
                if (!expectTerm)
                    throw _line.Error(t.Column, "expected '+' or '-' before '" + t.Text + "'");
                expectTerm = false;

                if (t.Kind == TokenKind.Number)
                {
                    if (i + 1 < end && tokens[i + 1].IsPunct('*'))
                    {
                        if (i + 2 >= end || !tokens[i + 2].IsIdentifier || !AsmNames.TryGetRegister(tokens[i + 2].Text, out var scaled))
                            throw _line.Error(tokens[i + 1].Column, "'*' only scales an index register, like rax*8");
                        AddRegister(e, tokens[i + 2], scaled, t, sign, allowRegisters);
                        i += 2;
                    }
                    else
                    {
                        e.Constant += sign * t.Value;
                    }
                }
                else if (t.IsIdentifier && AsmNames.TryGetRegister(t.Text, out var register))
                {
                    Token? scale = null;
                    if (i + 1 < end && tokens[i + 1].IsPunct('*'))
                    {
                        if (i + 2 >= end || tokens[i + 2].Kind != TokenKind.Number)
                            throw _line.Error(tokens[i + 1].Column, "expected a scale (1, 2, 4 or 8) after '*'");
                        scale = tokens[i + 2];
                        i += 2;
                    }
                    AddRegister(e, t, register, scale, sign, allowRegisters);
                }
                else if (t.IsIdentifier)
                {
                    AddAddress(e, t, sign);
                }
                else
                {
                    throw _line.Error(t.Column, "unexpected '" + t.Text + "'");
                }
                sign = 1;
            }
            if (expectTerm)
                throw _line.Error(tokens[end - 1].Column, "expected a value after '" + tokens[end - 1].Text + "'");
            if (e.AddressIsLabel && !e.Constant.IsZero)
                throw _line.Error(e.AddressToken!.Value.Column, "a label can't take an offset; put a label on the instruction you mean");
            return e;
        }

        private void AddRegister(Expression e, Token token, Register register, Token? scale, int sign, bool allowRegisters)
        {
            if (!allowRegisters)
                throw _line.Error(token.Column, "register '" + token.Text + "' can't be part of a value; memory operands need [ ]");
            if (sign < 0)
                throw _line.Error(token.Column, "a register can't be subtracted in an address");
            if (scale != null)
            {
                var s = scale.Value.Value;
                if (s != 1 && s != 2 && s != 4 && s != 8)
                    throw _line.Error(scale.Value.Column, "scale must be 1, 2, 4 or 8");
            }
            e.Registers.Add(new RegisterTerm(token, register, scale));
        }

        private void AddAddress(Expression e, Token token, int sign)
        {
            if (!_scope.TryResolve(token.Text, out var address, out var isLabel))
                throw _line.Error(token.Column, "unknown register or symbol '" + token.Text + "'");
            if (sign < 0)
                throw _line.Error(token.Column, "the address '" + token.Text + "' can't be subtracted");
            if (e.AddressToken != null)
                throw _line.Error(token.Column, "only one symbol or label per operand ('" + e.AddressToken.Value.Text + "' is already there)");
            e.AddressToken = token;
            e.Address = address;
            e.AddressIsLabel = isLabel;
        }

        /// <summary>Two's-complement bits of a value already checked to fit in <paramref name="bits"/>.</summary>
        internal static ulong ToBits(BigInteger value, int bits)
        {
            var modulus = BigInteger.One << bits;
            var wrapped = ((value % modulus) + modulus) % modulus;
            return (ulong)wrapped;
        }
    }
}
