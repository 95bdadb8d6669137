using System.Numerics;
using Iced.Intel;

namespace HotpatchTools.Engine.Assembly
{
    /// <summary>
    /// Picks the Iced <see cref="Code"/> for a mnemonic and parsed operands by matching them against Iced's opcode
    /// tables, then builds the instruction. Among the forms that fit, the shortest encoding wins; near branches
    /// take their rel32 form because the BlockEncoder shortens them once it knows the distances.
    /// </summary>
    internal sealed class FormSelector
    {
        private static readonly Dictionary<Mnemonic, Code[]> CodesByMnemonic = BuildCodeTable();

        private readonly int _bitness;
        private readonly Encoder _encoder;

        public FormSelector(int bitness)
        {
            _bitness = bitness;
            _encoder = Encoder.Create(bitness, new DiscardingCodeWriter());
        }

        private sealed class Candidate
        {
            public Candidate(Code code, IReadOnlyList<AsmOperand> operands)
            {
                Code = code; Info = code.ToOpCode(); Operands = operands;
            }
            public Code Code { get; }
            public OpCodeInfo Info { get; }
            public IReadOnlyList<AsmOperand> Operands { get; }
        }

        public Instruction Select(SourceLine line, Token mnemonicToken, Mnemonic mnemonic, PrefixRequest prefix,
            IReadOnlyList<AsmOperand> operands)
        {
            string name = mnemonicToken.Text.ToLowerInvariant();
            if (!CodesByMnemonic.TryGetValue(mnemonic, out var codes))
                throw line.Error(mnemonicToken.Column, "'" + name + "' is not supported: only legacy and VEX encodings are");
            var modeCodes = codes.Where(c => _bitness == 64 ? c.ToOpCode().Mode64 : c.ToOpCode().Mode32).ToList();
            if (modeCodes.Count == 0)
                throw line.Error(mnemonicToken.Column, "'" + name + "' is not valid in " + _bitness + "-bit code");

            var candidates = new List<Candidate>();
            foreach (var operandList in OperandOrders(mnemonic, operands))
                foreach (var code in modeCodes)
                {
                    var candidate = new Candidate(code, operandList);
                    if (IsStructuralMatch(candidate))
                        candidates.Add(candidate);
                }
            if (candidates.Count == 0)
                throw NoForm(line, mnemonicToken, name, operands);

            // The operand size comes from registers or a ptr keyword, never from how large an immediate is.
            candidates = ResolveMemorySize(line, mnemonic, operands, candidates);
            var fitting = candidates.Where(ImmediatesFit).ToList();
            if (fitting.Count == 0)
                throw ImmediateError(line, candidates);

            fitting = ApplyPrefixes(line, name, prefix, fitting);

            var branches = fitting.Where(c => BranchOperandIndex(c.Info) >= 0).ToList();
            if (branches.Count > 0)
                return BuildBranch(PreferredBranch(branches), prefix);

            if (!operands.Any(o => o.Type != OperandType.Immediate) && fitting.Any(c => c.Info.OperandSize != 16))
            {
                // Nothing in the text asks for 16-bit operands, so `push 0xffff` must not become `pushw`.
                fitting = fitting.Where(c => c.Info.OperandSize != 16).ToList();
            }
            return Shortest(line, mnemonicToken, operands, fitting, prefix);
        }

        /// <summary>
        /// XCHG and TEST of registers and memory are commutative, but Iced lists one order only (`xchg r32, eax`,
        /// `test r/m32, r32`). Two-operand IMUL with an immediate is short for `imul r, r, imm`.
        /// </summary>
        private static IEnumerable<IReadOnlyList<AsmOperand>> OperandOrders(Mnemonic mnemonic, IReadOnlyList<AsmOperand> operands)
        {
            if (mnemonic == Mnemonic.Imul && operands.Count == 2 && operands[1].Type == OperandType.Immediate)
            {
                yield return new[] { operands[0], operands[0], operands[1] };
                yield break;
            }
            yield return operands;
            if ((mnemonic == Mnemonic.Xchg || mnemonic == Mnemonic.Test) && operands.Count == 2
                && operands.All(o => o.Type != OperandType.Immediate))
                yield return new[] { operands[1], operands[0] };
        }

        private bool IsStructuralMatch(Candidate c)
        {
            var info = c.Info;
            if (info.OpCount != c.Operands.Count)
                return false;
            // XCHG EAX,EAX in the short form is 90h, which is NOP in 64-bit mode and would not clear RAX's upper half.
            if (c.Code == Code.Xchg_r32_EAX && _bitness == 64 && c.Operands[0].Register == Register.EAX)
                return false;
            for (int i = 0; i < info.OpCount; i++)
            {
                var kind = info.GetOpKind(i);
                var op = c.Operands[i];
                bool ok;
                switch (op.Type)
                {
                    case OperandType.Register:
                        ok = MatchesRegister(kind, op.Register);
                        break;
                    case OperandType.Memory:
                        ok = MatchesMemory(kind, op.Memory);
                        int codeSize = info.MemorySize.GetSize();
                        if (ok && op.Memory.Size != 0 && codeSize != 0 && codeSize != op.Memory.Size)
                            ok = false;
                        break;
                    default:
                        ok = IsBranchKind(kind) || (IsImmediateKind(kind) && op.Label == null);
                        break;
                }
                if (!ok)
                    return false;
            }
            return true;
        }

        private static bool MatchesRegister(OpCodeOperandKind kind, Register reg)
        {
            switch (kind)
            {
                case OpCodeOperandKind.r8_or_mem:
                case OpCodeOperandKind.r8_reg:
                case OpCodeOperandKind.r8_opcode:
                    return reg.IsGPR8();
                case OpCodeOperandKind.r16_or_mem:
                case OpCodeOperandKind.r16_reg:
                case OpCodeOperandKind.r16_rm:
                case OpCodeOperandKind.r16_opcode:
                    return reg.IsGPR16();
                case OpCodeOperandKind.r32_or_mem:
                case OpCodeOperandKind.r32_reg:
                case OpCodeOperandKind.r32_rm:
                case OpCodeOperandKind.r32_opcode:
                case OpCodeOperandKind.r32_vvvv:
                    return reg.IsGPR32();
                case OpCodeOperandKind.r64_or_mem:
                case OpCodeOperandKind.r64_reg:
                case OpCodeOperandKind.r64_rm:
                case OpCodeOperandKind.r64_opcode:
                case OpCodeOperandKind.r64_vvvv:
                    return reg.IsGPR64();
                case OpCodeOperandKind.mm_or_mem:
                case OpCodeOperandKind.mm_reg:
                case OpCodeOperandKind.mm_rm:
                    return reg.IsMM();
                case OpCodeOperandKind.xmm_or_mem:
                case OpCodeOperandKind.xmm_reg:
                case OpCodeOperandKind.xmm_rm:
                case OpCodeOperandKind.xmm_vvvv:
                case OpCodeOperandKind.xmm_is4:
                    return reg.IsXMM();
                case OpCodeOperandKind.ymm_or_mem:
                case OpCodeOperandKind.ymm_reg:
                case OpCodeOperandKind.ymm_rm:
                case OpCodeOperandKind.ymm_vvvv:
                case OpCodeOperandKind.ymm_is4:
                    return reg.IsYMM();
                case OpCodeOperandKind.seg_reg: return reg.IsSegmentRegister();
                case OpCodeOperandKind.cr_reg: return reg.IsCR();
                case OpCodeOperandKind.dr_reg: return reg.IsDR();
                case OpCodeOperandKind.sti_opcode: return reg.IsST();
                default: return FixedRegisters.TryGetValue(kind, out var fixedRegister) && reg == fixedRegister;
            }
        }

        /// <summary>
        /// The operand kinds that stand for one fixed register (the al of IN AL,DX, st0, the es of PUSH ES).
        /// Iced names each after its register; None is the only other kind whose name is a register's.
        /// </summary>
        internal static readonly IReadOnlyDictionary<OpCodeOperandKind, Register> FixedRegisters = BuildFixedRegisters();

        private static Dictionary<OpCodeOperandKind, Register> BuildFixedRegisters()
        {
            var table = new Dictionary<OpCodeOperandKind, Register>();
            foreach (OpCodeOperandKind kind in Enum.GetValues(typeof(OpCodeOperandKind)))
                if (kind != OpCodeOperandKind.None && Enum.TryParse(kind.ToString(), ignoreCase: true, out Register register))
                    table.Add(kind, register);
            return table;
        }

        private static bool MatchesMemory(OpCodeOperandKind kind, MemoryRef memory)
        {
            switch (kind)
            {
                case OpCodeOperandKind.mem:
                case OpCodeOperandKind.r8_or_mem:
                case OpCodeOperandKind.r16_or_mem:
                case OpCodeOperandKind.r32_or_mem:
                case OpCodeOperandKind.r64_or_mem:
                case OpCodeOperandKind.mm_or_mem:
                case OpCodeOperandKind.xmm_or_mem:
                case OpCodeOperandKind.ymm_or_mem:
                    return true;
                case OpCodeOperandKind.mem_offs:
                    return memory.IsAbsolute;
                default:
                    return false;
            }
        }

        private static bool IsImmediateKind(OpCodeOperandKind kind) => ImmediateBits(kind) > 0;

        /// <summary>Width of the immediate field, or 0 if the kind is not an immediate.</summary>
        private static int ImmediateBits(OpCodeOperandKind kind)
        {
            switch (kind)
            {
                case OpCodeOperandKind.imm8:
                case OpCodeOperandKind.imm8_const_1:
                case OpCodeOperandKind.imm8sex16:
                case OpCodeOperandKind.imm8sex32:
                case OpCodeOperandKind.imm8sex64:
                    return 8;
                case OpCodeOperandKind.imm16:
                    return 16;
                case OpCodeOperandKind.imm32:
                case OpCodeOperandKind.imm32sex64:
                    return 32;
                case OpCodeOperandKind.imm64:
                    return 64;
                default:
                    return 0;
            }
        }

        private bool IsBranchKind(OpCodeOperandKind kind) => _bitness == 64
            ? kind == OpCodeOperandKind.br64_1 || kind == OpCodeOperandKind.br64_4
            : kind == OpCodeOperandKind.br32_1 || kind == OpCodeOperandKind.br32_4;

        private int BranchOperandIndex(OpCodeInfo info)
        {
            for (int i = 0; i < info.OpCount; i++)
                if (IsBranchKind(info.GetOpKind(i)))
                    return i;
            return -1;
        }

        private bool ImmediatesFit(Candidate c)
        {
            for (int i = 0; i < c.Operands.Count; i++)
                if (c.Operands[i].Type == OperandType.Immediate && !Fits(c.Info.GetOpKind(i), c.Operands[i].Value))
                    return false;
            return true;
        }

        private bool Fits(OpCodeOperandKind kind, BigInteger v)
        {
            switch (kind)
            {
                // Immediates that are not sign-extended accept both the signed and the unsigned reading of their bits.
                case OpCodeOperandKind.imm8: return InRange(v, 8);
                case OpCodeOperandKind.imm16: return InRange(v, 16);
                case OpCodeOperandKind.imm32: return InRange(v, 32);
                case OpCodeOperandKind.imm64: return InRange(v, 64);
                case OpCodeOperandKind.imm8_const_1: return v.IsOne;
                // Sign-extended ones take any value of the operand size whose bits sign-extend from the field.
                case OpCodeOperandKind.imm8sex16: return SignExtends(v, 16, 8);
                case OpCodeOperandKind.imm8sex32: return SignExtends(v, 32, 8);
                case OpCodeOperandKind.imm8sex64: return SignExtends(v, 64, 8);
                case OpCodeOperandKind.imm32sex64: return SignExtends(v, 64, 32);
                default: return IsBranchKind(kind) && v.Sign >= 0 && v < (BigInteger.One << _bitness);
            }
        }

        private static bool InRange(BigInteger v, int bits) =>
            v >= -(BigInteger.One << (bits - 1)) && v < (BigInteger.One << bits);

        private static bool SignExtends(BigInteger v, int operandBits, int fieldBits)
        {
            if (!InRange(v, operandBits))
                return false;
            var signed = v >= (BigInteger.One << (operandBits - 1)) ? v - (BigInteger.One << operandBits) : v;
            var half = BigInteger.One << (fieldBits - 1);
            return signed >= -half && signed < half;
        }

        private AsmException NoForm(SourceLine line, Token mnemonicToken, string name, IReadOnlyList<AsmOperand> operands)
        {
            var label = operands.FirstOrDefault(o => o.Label != null);
            if (label != null)
                return line.Error(label.Column, "label '" + label.Label + "' can only be a branch target (or [rip + " + label.Label + "])");
            var shape = operands.Count == 0 ? "no operands" : "(" + string.Join(", ", operands.Select(o => o.Describe())) + ")";
            return line.Error(mnemonicToken.Column, "no form of '" + name + "' takes " + shape);
        }

        private AsmException ImmediateError(SourceLine line, List<Candidate> candidates)
        {
            foreach (var op in candidates[0].Operands.Where(o => o.Type == OperandType.Immediate))
            {
                var kinds = candidates.Select(c => c.Info.GetOpKind(PositionOf(c, op))).ToList();
                if (kinds.Any(k => Fits(k, op.Value)))
                    continue;
                if (kinds.Any(IsBranchKind))
                    return line.Error(op.Column, "branch target " + op.Text + " is not a " + _bitness + "-bit address");
                return line.Error(op.Column, "immediate " + op.Text + " does not fit in " + kinds.Max(ImmediateBits) + " bits");
            }
            return line.Error(candidates[0].Operands[0].Column, "no single form takes all of these immediates");
        }

        private static int PositionOf(Candidate c, AsmOperand op)
        {
            for (int i = 0; i < c.Operands.Count; i++)
                if (ReferenceEquals(c.Operands[i], op))
                    return i;
            throw new InvalidOperationException("operand is not part of the candidate");
        }

        private static List<Candidate> ApplyPrefixes(SourceLine line, string name, PrefixRequest prefix, List<Candidate> candidates)
        {
            if (prefix.Lock != null)
            {
                candidates = candidates.Where(c => c.Info.CanUseLockPrefix && c.Operands.Count > 0 && c.Operands[0].Type == OperandType.Memory).ToList();
                if (candidates.Count == 0)
                    throw line.Error(prefix.Lock.Value.Column, "'lock' needs an instruction that can be locked with a memory destination, not '" + name + "' with these operands");
            }
            if (prefix.Rep != null)
            {
                candidates = candidates.Where(c => prefix.RepKind == RepPrefixKind.Repne ? c.Info.CanUseRepnePrefix : c.Info.CanUseRepPrefix).ToList();
                if (candidates.Count == 0)
                    throw line.Error(prefix.Rep.Value.Column, "'" + prefix.Rep.Value.Text + "' can't be used with '" + name + "'");
            }
            return candidates;
        }

        private Candidate PreferredBranch(List<Candidate> branches)
        {
            int Rank(Candidate c)
            {
                var kind = c.Info.GetOpKind(BranchOperandIndex(c.Info));
                int rank = kind == OpCodeOperandKind.br64_4 || kind == OpCodeOperandKind.br32_4 ? 0 : 1;
                // LOOP and JRCXZ have variants using the other address size (ECX instead of RCX); the native one is meant.
                if (c.Info.AddressSize != 0 && c.Info.AddressSize != _bitness)
                    rank += 2;
                return rank;
            }
            return branches.OrderBy(Rank).First();
        }

        private static Instruction BuildBranch(Candidate c, PrefixRequest prefix)
        {
            var instruction = Instruction.CreateBranch(c.Code, (ulong)c.Operands[0].Value);
            prefix.ApplyTo(ref instruction);
            return instruction;
        }

        private List<Candidate> ResolveMemorySize(SourceLine line, Mnemonic mnemonic, IReadOnlyList<AsmOperand> operands, List<Candidate> candidates)
        {
            var unsized = operands.FirstOrDefault(o => o.Type == OperandType.Memory && o.Memory.Size == 0);
            if (unsized == null)
                return candidates;
            var sizes = candidates.Select(c => c.Info.MemorySize.GetSize()).Where(s => s != 0).Distinct().ToList();
            if (sizes.Count <= 1)
                return candidates;
            // Like other assemblers, an indirect near call or jump through memory defaults to the mode's address size.
            if ((mnemonic == Mnemonic.Call || mnemonic == Mnemonic.Jmp) && sizes.Contains(_bitness / 8))
                return candidates.Where(c => c.Info.MemorySize.GetSize() == _bitness / 8).ToList();
            throw line.Error(unsized.Column, "operand size is ambiguous; write byte/word/dword/qword ptr");
        }

        private Instruction Shortest(SourceLine line, Token mnemonicToken, IReadOnlyList<AsmOperand> operands,
            List<Candidate> candidates, PrefixRequest prefix)
        {
            Instruction best = default;
            uint bestLength = uint.MaxValue;
            int bestImmediateBits = int.MaxValue;
            string? firstError = null;
            foreach (var c in candidates)
            {
                Instruction instruction;
                try
                {
                    instruction = Build(c);
                }
                catch (ArgumentException e)
                {
                    firstError = firstError ?? e.Message;
                    continue;
                }
                prefix.ApplyTo(ref instruction);
                var memory = c.Operands.FirstOrDefault(o => o.Type == OperandType.Memory)?.Memory;
                // A RIP-relative operand encodes a distance, so try it from an address near its target.
                ulong ip = memory != null && memory.IsRipRelative ? memory.Displacement : 0;
                if (_encoder.TryEncode(instruction, ip, out uint length, out var error))
                {
                    // On equal length the narrower immediate wins (`add ax, -1` as 83 /0 ib), as other assemblers do.
                    int immediateBits = ImmediateBitsOf(c);
                    if (length < bestLength || (length == bestLength && immediateBits < bestImmediateBits))
                    {
                        best = instruction;
                        bestLength = length;
                        bestImmediateBits = immediateBits;
                    }
                }
                else
                {
                    firstError = firstError ?? error;
                }
            }
            if (bestLength == uint.MaxValue)
                throw line.Error(mnemonicToken.Column, "can't encode '" + mnemonicToken.Text + " "
                    + string.Join(", ", operands.Select(o => o.Text)) + "': " + firstError);
            return best;
        }

        private static int ImmediateBitsOf(Candidate c)
        {
            int bits = 0;
            for (int i = 0; i < c.Info.OpCount; i++)
                bits += ImmediateBits(c.Info.GetOpKind(i));
            return bits;
        }

        private static Instruction Build(Candidate c)
        {
            var instruction = new Instruction { Code = c.Code };
            bool hadImmediate = false;
            for (int i = 0; i < c.Operands.Count; i++)
            {
                var op = c.Operands[i];
                switch (op.Type)
                {
                    case OperandType.Register:
                        instruction.SetOpKind(i, OpKind.Register);
                        instruction.SetOpRegister(i, op.Register);
                        break;
                    case OperandType.Memory:
                        var m = op.Memory;
                        instruction.SetOpKind(i, OpKind.Memory);
                        instruction.MemoryBase = m.Base;
                        instruction.MemoryIndex = m.Index;
                        instruction.MemoryIndexScale = m.Scale;
                        instruction.MemoryDisplacement64 = m.Displacement;
                        instruction.MemoryDisplSize = m.DisplSize;
                        instruction.SegmentPrefix = m.Segment;
                        break;
                    default:
                        SetImmediate(ref instruction, i, c.Info.GetOpKind(i), OperandParser.ToBits(op.Value, 64), hadImmediate);
                        hadImmediate = true;
                        break;
                }
            }
            return instruction;
        }

        private static void SetImmediate(ref Instruction instruction, int operand, OpCodeOperandKind kind, ulong bits, bool isSecond)
        {
            instruction.SetOpKind(operand, kind switch
            {
                OpCodeOperandKind.imm8 or OpCodeOperandKind.imm8_const_1 => isSecond ? OpKind.Immediate8_2nd : OpKind.Immediate8,
                OpCodeOperandKind.imm8sex16 => OpKind.Immediate8to16,
                OpCodeOperandKind.imm8sex32 => OpKind.Immediate8to32,
                OpCodeOperandKind.imm8sex64 => OpKind.Immediate8to64,
                OpCodeOperandKind.imm16 => OpKind.Immediate16,
                OpCodeOperandKind.imm32 => OpKind.Immediate32,
                OpCodeOperandKind.imm32sex64 => OpKind.Immediate32to64,
                OpCodeOperandKind.imm64 => OpKind.Immediate64,
                _ => throw new InvalidOperationException("operand " + operand + " is not an immediate"),
            });
            // Iced keeps the value as the operand kind just set holds it: truncated to its width, sign-extended on use.
            instruction.SetImmediate(operand, bits);
        }

        private static Dictionary<Mnemonic, Code[]> BuildCodeTable()
        {
            var table = new Dictionary<Mnemonic, List<Code>>();
            foreach (Code code in Enum.GetValues(typeof(Code)))
            {
                var info = code.ToOpCode();
                if (!info.IsInstruction || (info.Encoding != EncodingKind.Legacy && info.Encoding != EncodingKind.VEX))
                    continue;
                var mnemonic = code.Mnemonic();
                if (!table.TryGetValue(mnemonic, out var list))
                    table[mnemonic] = list = new List<Code>();
                list.Add(code);
            }
            return table.ToDictionary(p => p.Key, p => p.Value.ToArray());
        }

        private sealed class DiscardingCodeWriter : CodeWriter
        {
            public override void WriteByte(byte value) { }
        }
    }

    /// <summary>The lock and repeat prefixes written before a mnemonic.</summary>
    internal sealed class PrefixRequest
    {
        public Token? Lock { get; private set; }
        public Token? Rep { get; private set; }
        public RepPrefixKind RepKind { get; private set; }

        public static PrefixRequest From(SourceLine line, IReadOnlyList<Token> prefixes)
        {
            var request = new PrefixRequest();
            foreach (var p in prefixes)
            {
                var name = p.Text.ToLowerInvariant();
                if (name == "lock")
                {
                    if (request.Lock != null)
                        throw line.Error(p.Column, "duplicate 'lock' prefix");
                    request.Lock = p;
                }
                else
                {
                    if (request.Rep != null)
                        throw line.Error(p.Column, "only one of rep/repe/repne may be given");
                    request.Rep = p;
                    request.RepKind = name == "repne" || name == "repnz" ? RepPrefixKind.Repne : RepPrefixKind.Repe;
                }
            }
            return request;
        }

        public void ApplyTo(ref Instruction instruction)
        {
            instruction.HasLockPrefix = Lock != null;
            instruction.HasRepePrefix = Rep != null && RepKind == RepPrefixKind.Repe;
            instruction.HasRepnePrefix = Rep != null && RepKind == RepPrefixKind.Repne;
        }
    }
}
