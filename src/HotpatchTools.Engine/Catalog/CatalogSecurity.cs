using HotpatchTools.Engine.Machine;

namespace HotpatchTools.Engine.Catalog
{
    /// <summary>
    /// Who may change the catalog, and that its files are really only theirs: an entry anyone can write would let
    /// them run code in every process a root enforcement pass patches. The rules are the trust store's and the audit
    /// log's (<see cref="SecureFiles"/>).
    /// </summary>
    public static class CatalogSecurity
    {
        /// <summary>
        /// Why a catalog path cannot be trusted, or null: it must exist and be writable only by administrators (on
        /// Linux owned by root and writable by nobody else, the check sshd makes of authorized_keys; on Windows owned
        /// by Administrators or SYSTEM).
        /// </summary>
        public static string? Untrusted(string path) =>
            File.Exists(path) || Directory.Exists(path) ? SecureFiles.WhyNotAdminOnly(path) : path + " cannot be examined";
    }
}
