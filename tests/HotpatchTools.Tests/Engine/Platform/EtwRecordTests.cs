using System.Runtime.InteropServices;
using System.Text;
using HotpatchTools.Engine.Platform;
using HotpatchTools.Engine.Platform.Windows;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// The Windows watch's reading of ETW event records (WindowsProcessEvents.Parse), on records laid out here as the
    /// kernel writes them: the fields it needs, and records that lie about their lengths. Neither Wine nor this machine
    /// delivers real ones (Wine 8's OpenTraceW fails), so the layout is checked against the documented one here.
    /// </summary>
    public sealed class EtwRecordTests : IDisposable
    {
        private static readonly Guid KernelProcess = new Guid("22FB2CD6-0E7B-422B-A0C7-2FAD1FD0E716");
        private static readonly HashSet<string> Watched = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "victim.dll" };
        private readonly List<IntPtr> _blocks = new List<IntPtr>();

        public void Dispose()
        {
            foreach (var b in _blocks) Marshal.FreeHGlobal(b);
        }

        private IntPtr Block(byte[] bytes)
        {
            var p = Marshal.AllocHGlobal(Math.Max(bytes.Length, 1));
            Marshal.Copy(bytes, 0, p, bytes.Length);
            _blocks.Add(p);
            return p;
        }

        /// <summary>An EVENT_RECORD (64-bit layout: EVENT_HEADER, buffer context, counts, then pointers) with its user data.</summary>
        private IntPtr Record(ushort id, byte[]? userData, Guid? provider = null, ushort flags = 0x40, int? claimedLength = null)
        {
            var r = new byte[112];
            BitConverter.GetBytes(flags).CopyTo(r, 4);
            BitConverter.GetBytes(4321).CopyTo(r, 12); // the header's ProcessId: the logging (parent) process
            (provider ?? KernelProcess).ToByteArray().CopyTo(r, 24);
            BitConverter.GetBytes(id).CopyTo(r, 40);
            BitConverter.GetBytes((ushort)(claimedLength ?? userData?.Length ?? 0)).CopyTo(r, 86);
            var record = Block(r);
            Marshal.WriteIntPtr(record, 96, userData == null ? IntPtr.Zero : Block(userData));
            return record;
        }

        private static byte[] ImageLoad(int pid, string name, int pointer = 8, bool terminate = true)
        {
            var data = new List<byte>();
            data.AddRange(new byte[pointer]);            // ImageBase
            data.AddRange(new byte[pointer]);            // ImageSize
            data.AddRange(BitConverter.GetBytes(pid));   // ProcessID
            data.AddRange(new byte[8]);                  // ImageCheckSum, TimeDateStamp
            data.AddRange(new byte[pointer]);            // DefaultBase
            data.AddRange(Encoding.Unicode.GetBytes(name + (terminate ? "\0" : "")));
            return data.ToArray();
        }

        private static ProcessEvent? Parse(IntPtr record) => WindowsProcessEvents.Parse(record, Watched.Contains);

        [Fact]
        public void A_process_start_names_the_new_process_not_the_parent_that_logged_it()
        {
            var e = Parse(Record(1, new byte[] { 0xD2, 0x04, 0, 0, 1, 2, 3, 4 }));
            Assert.Equal((1234, ProcessEventKind.Started), (e!.Value.ProcessId, e.Value.Kind));
        }

        [Fact]
        public void An_image_load_of_a_watched_module_names_the_loading_process_on_either_pointer_size()
        {
            var e64 = Parse(Record(5, ImageLoad(777, @"\Device\HarddiskVolume3\Windows\System32\Victim.DLL")));
            Assert.Equal((777, ProcessEventKind.OpenedModule), (e64!.Value.ProcessId, e64.Value.Kind));
            // A 32-bit kernel's record: pointers of 4 bytes, flagged in the header.
            var e32 = Parse(Record(5, ImageLoad(778, @"C:\apps\victim.dll", pointer: 4), flags: 0x20));
            Assert.Equal((778, ProcessEventKind.OpenedModule), (e32!.Value.ProcessId, e32.Value.Kind));
        }

        [Fact]
        public void Other_records_and_unwatched_modules_say_nothing()
        {
            Assert.Null(Parse(Record(5, ImageLoad(777, @"\Device\HarddiskVolume3\Windows\System32\kernel32.dll"))));
            Assert.Null(Parse(Record(2, new byte[32])));                                          // ProcessStop
            Assert.Null(Parse(Record(1, new byte[8], provider: Guid.NewGuid())));                   // another provider
            Assert.Null(Parse(IntPtr.Zero));
            // The victim's name as a folder, not as the file loaded.
            Assert.Null(Parse(Record(5, ImageLoad(777, @"C:\victim.dll\other.dll"))));
        }

        [Fact]
        public void A_record_whose_lengths_lie_is_read_only_within_what_it_holds()
        {
            Assert.Null(Parse(Record(1, null, claimedLength: 8)));                                  // no user data at all
            Assert.Null(Parse(Record(1, new byte[3])));                                             // shorter than a process id
            var full = ImageLoad(777, @"C:\victim.dll");
            // Shorter than the fields before the name.
            Assert.Null(Parse(Record(5, full, claimedLength: 8 + 8 + 4 + 8 + 8)));
            // The length ends inside the name: only what it covers is read, and "victim.d" is not watched.
            Assert.Null(Parse(Record(5, full, claimedLength: full.Length - 6)));
            // No terminating NUL: the name ends where the data ends.
            var e = Parse(Record(5, ImageLoad(779, @"C:\victim.dll", terminate: false)));
            Assert.Equal(779, e!.Value.ProcessId);
            // A name longer than any file name is not one.
            Assert.Null(Parse(Record(5, ImageLoad(777, new string('v', 300)))));
        }
    }
}
