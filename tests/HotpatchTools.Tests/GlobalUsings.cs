// The namespaces nearly every test opens; the others stay in the files that need them. The Wine project compiles
// this file too (its tests and the shared ones it lists rely on it), so it names only what both projects reference.
global using System;
global using System.Collections.Generic;
global using System.IO;
global using System.Linq;
global using HotpatchTools.Engine;
global using HotpatchTools.Engine.Patching;
global using HotpatchTools.Tests.Support;
global using Xunit;
