namespace HotpatchTools.Tests.Support
{
    /// <summary>A fixture that builds its sample binaries from source in a temporary folder of its own, deleted after the class.</summary>
    public abstract class SampleFolder : IDisposable
    {
        /// <param name="prefix">Names the folder (PREFIX*), so one left behind is known.</param>
        protected SampleFolder(string prefix) => Dir = Directory.CreateTempSubdirectory(prefix).FullName;

        public string Dir { get; }

        /// <summary>Writes a source file into the folder; its path.</summary>
        protected string Write(string name, string text)
        {
            var path = Path.Combine(Dir, name);
            File.WriteAllText(path, text);
            return path;
        }

        /// <summary>Runs <paramref name="compiler"/> with the arguments and -o the output in the folder; the output's path.</summary>
        protected string Compile(string compiler, string output, params string[] args)
        {
            var path = Path.Combine(Dir, output);
            NativeBuild.Run(compiler, args.Concat(new[] { "-o", path }).ToArray());
            return path;
        }

        /// <summary>A copy of <paramref name="input"/> stripped of its symbols, named <paramref name="output"/> in the folder; its path.</summary>
        protected string Strip(string input, string output) => Compile("strip", output, input);

        public void Dispose() => Directory.Delete(Dir, true);
    }
}
