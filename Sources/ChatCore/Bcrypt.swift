import CLinux
import JWT

/// bcrypt through libxcrypt's `crypt_r`: `$2b$` hashes like the `bcrypt` npm package makes,
/// and `$2a$`/`$2y$` ones from elsewhere verify too. Slow by design: never call on an event loop.
public enum Bcrypt {
    public static let defaultCost = 10
    public static let costRange = 4...31

    public enum Failure: Error, Sendable, Equatable {
        case invalidCost(Int)
        case hashingFailed
    }

    public static func hash(_ password: String, cost: Int = defaultCost) throws(Failure) -> String {
        guard costRange.contains(cost) else { throw .invalidCost(cost) }
        var salt = [CChar](repeating: 0, count: Int(CRYPT_GENSALT_OUTPUT_SIZE))
        // nil random bytes: libxcrypt draws them from the kernel.
        guard crypt_gensalt_rn("$2b$", UInt(cost), nil, 0, &salt, Int32(salt.count)) != nil else { throw .hashingFailed }
        guard let hash = crypt(password, setting: salt) else { throw .hashingFailed }
        return hash
    }

    /// True when `password` hashes to `hash`. Any malformed or foreign hash is simply false.
    public static func verify(_ password: String, hash: String) -> Bool {
        guard hash.hasPrefix("$2a$") || hash.hasPrefix("$2b$") || hash.hasPrefix("$2y$"), hash.utf8.count == 60 else { return false }
        guard let computed = hash.withCString({ crypt(password, setting: $0) }) else { return false }
        return constantTimeEqual(Array(computed.utf8), Array(hash.utf8))
    }

    private static func crypt(_ password: String, setting: UnsafePointer<CChar>) -> String? {
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        defer { data.deallocate() }
        // crypt_r wants a zeroed crypt_data on first use (it is about 32 KiB).
        UnsafeMutableRawPointer(data).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<crypt_data>.size)
        guard let result = crypt_r(password, setting, data) else { return nil }
        let text = String(cString: result)
        // libxcrypt signals failure with a string starting with '*'.
        return text.hasPrefix("*") ? nil : text
    }

    private static func crypt(_ password: String, setting: [CChar]) -> String? {
        setting.withUnsafeBufferPointer { crypt(password, setting: $0.baseAddress!) }
    }
}
