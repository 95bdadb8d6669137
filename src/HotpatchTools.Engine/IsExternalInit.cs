namespace System.Runtime.CompilerServices
{
    // netstandard2.0 lacks the marker type that init accessors (records, record structs) compile against; the compiler
    // only needs it to exist, so an internal copy lets the engine use them.
    internal static class IsExternalInit
    {
    }
}
