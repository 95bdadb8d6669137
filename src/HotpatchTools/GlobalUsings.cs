// The namespaces nearly every file of the module opens; the others stay in the files that need them.
global using System;
global using System.Collections.Generic;
global using System.Linq;
global using System.Management.Automation;
global using HotpatchTools.Engine;
