namespace HotpatchTools.Engine.Platform.Linux
{
    /// <summary>One datagram to a Unix socket by path: how a record reaches syslog without openlog/syslog(3).</summary>
    internal static class UnixDatagram
    {
        /// <summary>sockaddr_un's sun_path holds 108 bytes with its terminating zero.</summary>
        private const int MaxPath = 107;

        /// <summary>False when the path does not fit a socket address, the socket cannot be made, or the datagram is not taken whole.</summary>
        public static unsafe bool Send(string socketPath, byte[] datagram)
        {
            var path = System.Text.Encoding.UTF8.GetBytes(socketPath);
            if (path.Length > MaxPath) return false;
            var addr = stackalloc byte[2 + MaxPath + 1];
            addr[0] = LibC.AF_UNIX;
            addr[1] = 0;
            for (int i = 0; i < path.Length; i++) addr[2 + i] = path[i];
            addr[2 + path.Length] = 0;
            int fd = LibC.socket(LibC.AF_UNIX, LibC.SOCK_DGRAM | LibC.SOCK_CLOEXEC, 0);
            if (fd < 0) return false;
            try
            {
                fixed (byte* p = datagram)
                    return (long)LibC.sendto(fd, p, (UIntPtr)datagram.Length, LibC.MSG_NOSIGNAL, addr, 2 + path.Length + 1) == datagram.Length;
            }
            finally { LibC.close(fd); }
        }
    }
}
