using System.Collections.ObjectModel;

namespace HotpatchTools
{
    /// <summary>
    /// A list of strings in an output object (sites, details, disassembly). It enumerates, indexes and serializes
    /// like the string array it replaces, but converts to one line ("a; b"), so Export-Csv and string expansion
    /// show its items instead of "System.String[]".
    /// </summary>
    public sealed class FlatStringList : ReadOnlyCollection<string>
    {
        public FlatStringList(IList<string> items) : base(items) { }

        public FlatStringList() : base(new string[0]) { }

        public override string ToString() => string.Join("; ", this);
    }
}
