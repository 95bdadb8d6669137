// Beside the SDK's implicit usings, the namespaces both benchmark files open.
global using System.Diagnostics;
global using System.Runtime.InteropServices;
global using System.Text;
global using HotpatchTools.Engine.Format;
global using HotpatchTools.Engine.Patching;
