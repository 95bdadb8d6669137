// The namespaces nearly every file of the engine opens; the others stay in the files that need them (System.Reflection
// above all: its Assembly would meet the engine's namespace HotpatchTools.Engine.Assembly).
global using System;
global using System.Collections.Generic;
global using System.IO;
global using System.Linq;
