using HotpatchTools.Engine.Modules;

namespace HotpatchTools.Tests.Support
{
    /// <summary>Damaged copies of a good module file, and what a parser must do with one: a format error naming the file.</summary>
    internal static class MalformedModules
    {
        public static byte[] With(byte[] good, Action<byte[]> edit)
        {
            var copy = (byte[])good.Clone();
            edit(copy);
            return copy;
        }

        /// <param name="format">"ELF" or "PE", as the message names it.</param>
        public static void Refused(Func<byte[], string, object> parse, string format, byte[] bytes, string source, string reason)
        {
            var e = Assert.Throws<ModuleFormatException>(() => parse(bytes, source));
            Assert.Equal(HotpatchErrorKind.Internal, e.Kind);
            Assert.Equal(source, e.Source);
            Assert.StartsWith(source + ": not a valid " + format + " file: ", e.Message);
            Assert.Contains(reason, e.Reason);
        }
    }
}
