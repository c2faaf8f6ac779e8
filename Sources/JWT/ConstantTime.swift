import COpenSSL

/// Compares two byte strings in a time that depends on their length only, not on where they
/// differ (OpenSSL's CRYPTO_memcmp), so an attacker cannot find a secret byte by byte by timing.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    return a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 } }
}
