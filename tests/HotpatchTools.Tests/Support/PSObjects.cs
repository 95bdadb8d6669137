using System.Management.Automation;

namespace HotpatchTools.Tests.Support
{
    /// <summary>Reading the objects the cmdlets write, local or deserialized: `using static` in the tests that do.</summary>
    public static class PSObjects
    {
        /// <summary>
        /// A property's value, typed as the tests use it: they read properties the object must have, and a null (the
        /// property missing or empty) fails the assertion or the cast that follows.
        /// </summary>
        public static object Prop(PSObject o, string name) => o.Properties[name]?.Value!;

        /// <summary>A property's value as text; "" when it is null or missing.</summary>
        public static string Text(PSObject o, string name) => Prop(o, name)?.ToString() ?? "";
    }
}
