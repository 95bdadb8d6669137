using System.Threading.Tasks;
using HotpatchTools.Engine.Trust;

namespace HotpatchTools.Tests
{
    /// <summary>A detached signature can lie like any other input: a damaged one is an invalid signature, never an exception.</summary>
    public sealed class SignatureVerifierTests : IDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-sig-").FullName;

        public void Dispose() => Directory.Delete(_dir, recursive: true);

        [Fact]
        public void A_signature_whose_certificate_does_not_decode_is_invalid_not_an_exception()
        {
            var patch = Path.Combine(_dir, "HP-SIG-1.micropatch.yaml");
            File.WriteAllText(patch, PatchFiles.Yaml("HP-SIG-1", "libexample.so", new[] { new PatchletSpec("f", new byte[] { 0x90 }) }));
            using var cert = TestCertificates.SelfSigned("CN=HotpatchTools Test Signer");
            var sig = PatchSigner.Sign(patch, cert);
            Assert.Equal(SignatureStatus.UntrustedPublisher, SignatureVerifier.Verify(patch, null).Signature.Status);

            // The signer's certificate, as carried in the signature, with its notAfter (the second UTCTime) no time at all:
            // the CMS envelope still decodes; the certificate fails only where it is first read.
            var bytes = File.ReadAllBytes(sig);
            int at = IndexOf(bytes, cert.RawData);
            Assert.True(at > 0, "the certificate is not in the signature");
            int notAfter = IndexOf(bytes, new byte[] { 0x17, 0x0d }, IndexOf(bytes, new byte[] { 0x17, 0x0d }, at) + 2);
            bytes[notAfter + 4] = (byte)'x';
            File.WriteAllBytes(sig, bytes);

            var s = SignatureVerifier.Verify(patch, null).Signature;
            Assert.Equal(SignatureStatus.InvalidSignature, s.Status);
            Assert.StartsWith(sig + " holds a malformed part (certificate or signed attribute): ", s.StatusMessage);
        }

        /// <summary>Runs <paramref name="read"/>, failing (after unblocking it) if it waits on the FIFO <paramref name="fifo"/>.</summary>
        private static async Task<T> WithoutBlocking<T>(string fifo, Func<T> read)
        {
            var task = Task.Run(read);
            if (await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(10))) != task)
            {
                using (new FileStream(fifo, FileMode.Open, FileAccess.Write)) { }
                Assert.Fail("reading blocked on the FIFO " + fifo);
            }
            return await task;
        }

        [Fact]
        public async Task A_FIFO_as_patch_file_or_signature_is_refused_without_blocking()
        {
            // A patch (or its .sig) in a folder others can write may be swapped for a FIFO, whose open waits for a writer.
            var patch = Path.Combine(_dir, "HP-SIG-2.micropatch.yaml");
            NativeBuild.Run("mkfifo", patch);
            var e = await WithoutBlocking(patch, () => Assert.Throws<HotpatchException>(() => SignatureVerifier.Verify(patch, null)));
            Assert.Equal(HotpatchErrorKind.InvalidPatchFile, e.Kind);
            Assert.Equal(patch + ": cannot read the file: it is not a regular file but a FIFO", e.Message);

            File.Delete(patch);
            File.WriteAllText(patch, PatchFiles.Yaml("HP-SIG-2", "libexample.so", new[] { new PatchletSpec("f", new byte[] { 0x90 }) }));
            NativeBuild.Run("mkfifo", patch + ".sig");
            var s = (await WithoutBlocking(patch + ".sig", () => SignatureVerifier.Verify(patch, null))).Signature;
            Assert.Equal(SignatureStatus.InvalidSignature, s.Status);
            Assert.Equal("Cannot read " + patch + ".sig: it is not a regular file but a FIFO", s.StatusMessage);
        }

        private static int IndexOf(byte[] haystack, byte[] needle, int from = 0)
        {
            for (int i = from; i + needle.Length <= haystack.Length; i++)
                if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
            return -1;
        }
    }
}
