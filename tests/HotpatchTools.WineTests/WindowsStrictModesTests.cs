using System.Runtime.InteropServices;
using System.Text;
using HotpatchTools.Engine.Audit;
using HotpatchTools.Engine.Machine;
using HotpatchTools.Engine.Trust;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// The trust folder, the audit log and the lock folder on Windows, under Wine: what a user who can write a folder
    /// (the folder itself or one above it, under %ProgramData% where any user may create folders) could do must be
    /// refused, judged from the security descriptor of the file opened, never through a link. Wine keeps a DACL that
    /// grants Everyone a right as the mode bits of the Unix file, so the descriptors set here are the real ones.
    /// Links are not tested here: Wine 8 cannot make a Windows symbolic link (CreateSymbolicLinkW reports success and
    /// makes none) and shows a Unix link as the file it names.
    /// </summary>
    public sealed class WindowsStrictModesTests : IDisposable
    {
        private readonly string _root;

        public WindowsStrictModesTests()
        {
            _root = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.CommonApplicationData), "hpt-strict-" + Guid.NewGuid().ToString("N").Substring(0, 8));
            SecureFiles.EnsureAdminDirectory(_root);
        }

        public void Dispose()
        {
            try { Directory.Delete(_root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }

        private TrustStore Store()
        {
            var store = new TrustStore(Path.Combine(_root, "trust"));
            store.AddThumbprint(new string('A', 40));
            return store;
        }

        [Fact]
        public void Folders_and_files_the_module_creates_are_trusted()
        {
            var store = Store();
            Assert.Null(SecureFiles.WhyNotAdminOnly(store.Directory));
            Assert.Null(SecureFiles.WhyNotAdminOnly(store.ListFile));
            Assert.Single(store.List());

            var log = new AuditLog(Path.Combine(_root, "log", "audit.jsonl"));
            log.Append(new AuditRecord { Action = AuditAction.Install, Result = AuditResult.Installed, PatchId = "T-STRICT" });
            log.Append(new AuditRecord { Action = AuditAction.Install, Result = AuditResult.Refused, PatchId = "T-STRICT" });
            var records = log.Read(out int unreadable);
            Assert.Equal(0, unreadable);
            Assert.Equal(new[] { AuditResult.Installed, AuditResult.Refused }, new[] { records[0].Result, records[1].Result });
        }

        [Fact]
        public void A_trust_folder_everyone_may_change_decides_nothing()
        {
            var store = Store();
            GrantEveryoneFullControl(store.Directory);

            var why = SecureFiles.WhyNotAdminOnly(store.Directory);
            Assert.NotNull(why);
            Assert.Contains("S-1-1-0", why);
            var e = Assert.Throws<HotpatchException>(() => store.List());
            Assert.Equal(HotpatchErrorKind.TrustStoreError, e.Kind);
            Assert.Contains(store.Directory, e.Message);
        }

        [Fact]
        public void A_folder_above_that_everyone_may_empty_is_refused_for_every_file_below()
        {
            var store = Store();
            // The folder itself stays administrators'; the one above it (as a pre-created %ProgramData% folder would be) does not.
            GrantEveryoneFullControl(_root);

            var why = SecureFiles.WhyNotAdminOnly(store.ListFile);
            Assert.NotNull(why);
            Assert.Contains("above", why);
            Assert.Contains(_root, why);
            Assert.Throws<UnauthorizedAccessException>(() => SecureFiles.ReadAdminFile(store.ListFile));
            Assert.Equal(HotpatchErrorKind.TrustStoreError, Assert.Throws<HotpatchException>(() => store.List()).Kind);
            // Writers refuse too: the audit log below such a folder is no trail.
            var log = new AuditLog(Path.Combine(_root, "log", "audit.jsonl"));
            Assert.Throws<UnauthorizedAccessException>(() => log.EnsureWritable());
        }

        [Fact]
        public void A_lock_folder_everyone_may_change_stops_a_writer_before_it_touches_the_process()
        {
            var previous = Environment.GetEnvironmentVariable(MachinePaths.OverrideVariable);
            Environment.SetEnvironmentVariable(MachinePaths.OverrideVariable, _root);
            try
            {
                using (TargetLock.Acquire(Environment.ProcessId, TimeSpan.FromSeconds(5))) { }
                GrantEveryoneFullControl(TargetLock.Directory);
                var e = Assert.Throws<HotpatchException>(() => TargetLock.Acquire(Environment.ProcessId, TimeSpan.FromSeconds(5)));
                Assert.Equal(HotpatchErrorKind.AccessDenied, e.Kind);
                Assert.Contains("S-1-1-0", e.Message);
            }
            finally { Environment.SetEnvironmentVariable(MachinePaths.OverrideVariable, previous); }
        }

        private static void GrantEveryoneFullControl(string path)
        {
            Assert.True(ConvertStringSecurityDescriptorToSecurityDescriptorW("D:(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;WD)", 1, out var sd, IntPtr.Zero));
            try { Assert.True(SetFileSecurityW(path, 4 /* DACL */, sd), "SetFileSecurityW failed: " + Marshal.GetLastWin32Error()); }
            finally { LocalFree(sd); }
        }

        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        private static extern bool ConvertStringSecurityDescriptorToSecurityDescriptorW(string sddl, uint revision, out IntPtr descriptor, IntPtr size);
        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        private static extern bool SetFileSecurityW(string path, uint information, IntPtr descriptor);
        [DllImport("kernel32.dll")] private static extern IntPtr LocalFree(IntPtr h);
    }
}
