import COpenSSL

/// OpenSSL's life in the process, for an executable to set up before anything uses it.
public enum OpenSSLProcess {
    /// Without it OpenSSL frees its state from an `atexit` handler, while the server's other
    /// threads (bcrypt, the database pool, which sign tokens and speak to PostgreSQL through
    /// it) may still be inside it: a stop under load ended once in "double free or
    /// corruption" instead of status 0. The process's exit gives the memory back anyway.
    /// Must come before OpenSSL's first use (the first initialisation decides).
    public static func keepStateUntilExit() {
        _ = OPENSSL_init_crypto(UInt64(OPENSSL_INIT_NO_ATEXIT), nil)
    }
}
