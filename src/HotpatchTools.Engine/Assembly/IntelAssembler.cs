using System;
using System.Collections.Generic;
using Iced.Intel;

namespace HotpatchTools.Engine.Assembly
{
    /// <summary>Where the assembler text sits in its file, so errors name file positions.</summary>
    public sealed class AsmSourceInfo
    {
        /// <summary>1-based file line of the code's first line.</summary>
        public int FirstLine { get; set; } = 1;
        /// <summary>1-based file column at which each code line's text starts.</summary>
        public int FirstColumn { get; set; } = 1;
    }

    /// <summary>The result of assembling: Iced instructions ready for a BlockEncoder.</summary>
    public sealed class AsmProgram
    {
        public AsmProgram(IReadOnlyList<Instruction> instructions) { Instructions = instructions; }

        /// <summary>
        /// Each instruction has a unique synthetic IP (never a real address) so labels can be branch targets
        /// inside one InstructionBlock; branches to `resume`, symbols and numbers carry absolute targets.
        /// </summary>
        public IReadOnlyList<Instruction> Instructions { get; }
    }

    public sealed class AsmException : HotpatchException
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

    public static class IntelAssembler
    {
        /// <summary>
        /// Assembles Intel-syntax x86 text, one instruction per line.
        /// resumeTarget: the address the built-in label `resume` stands for.
        /// resolveSymbol: returns the absolute address of a symbol name ("parse_record", "libc.so.6!getpid"),
        /// or null when unknown (the assembler then reports an error naming line and column).
        /// </summary>
        public static AsmProgram Assemble(string code, int bitness, ulong resumeTarget,
            Func<string, ulong?> resolveSymbol, AsmSourceInfo? source = null)
        {
            throw new NotImplementedException();
        }
    }
}
