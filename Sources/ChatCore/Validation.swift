import JSON

/// The input rules of CONTRACT.md Part 2, one place for all of them.
public enum Validation {
    public static let maxUsernameCharacters = 64
    /// The name as stored (untrimmed) is indexed, lower-cased, for the people search; a B-tree
    /// entry must stay under about 2,700 bytes, and lower-casing can make text half as long
    /// again. 64 of the longest common characters (family emoji, 18 bytes) fit.
    public static let maxUsernameBytes = 1536
    public static let maxEmailBytes = 254
    public static let minPasswordBytes = 8
    /// bcrypt reads no further than 72 bytes; a longer password is refused, not cut.
    public static let maxPasswordBytes = 72

    public struct Failure: Error, Sendable, Equatable {
        public let message: String
        public init(_ message: String) { self.message = message }
    }

    /// Trims the username for the length rule; the stored name is the one given, verbatim.
    public static func username(_ value: String) -> Result<String, Failure> {
        let trimmed = trimWhitespace(value)
        guard !trimmed.isEmpty else { return .failure(Failure("username must not be empty")) }
        guard trimmed.count <= maxUsernameCharacters else {
            return .failure(Failure("username must be at most \(maxUsernameCharacters) characters"))
        }
        guard value.utf8.count <= maxUsernameBytes else {
            return .failure(Failure("username must be at most \(maxUsernameBytes) bytes, spaces around it included"))
        }
        guard !containsControlCharacter(value) else { return .failure(Failure("username must not contain control characters")) }
        return .success(value)
    }

    /// Returns the trimmed email: one `@`, a non-empty local part, a dotted domain, ≤ 254 bytes.
    public static func email(_ value: String) -> Result<String, Failure> {
        let trimmed = trimWhitespace(value)
        guard !trimmed.isEmpty else { return .failure(Failure("email must not be empty")) }
        guard trimmed.utf8.count <= maxEmailBytes else { return .failure(Failure("email must be at most \(maxEmailBytes) bytes")) }
        guard !trimmed.unicodeScalars.contains(where: { $0.properties.isWhitespace || isControl($0) }) else {
            return .failure(Failure("email must not contain spaces or control characters"))
        }
        let parts = trimmed.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return .failure(Failure("email must contain exactly one @")) }
        guard !parts[0].isEmpty else { return .failure(Failure("email needs a name before the @")) }
        let labels = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, labels.allSatisfy({ !$0.isEmpty }) else {
            return .failure(Failure("email needs a domain with a dot, like example.com"))
        }
        return .success(trimmed)
    }

    public static func newPassword(_ value: String) -> Result<String, Failure> {
        let bytes = value.utf8.count
        guard bytes >= minPasswordBytes else { return .failure(Failure("password must be at least \(minPasswordBytes) bytes")) }
        guard bytes <= maxPasswordBytes else {
            return .failure(Failure("password must be at most \(maxPasswordBytes) bytes (bcrypt ignores the rest)"))
        }
        guard !value.utf8.contains(0) else { return .failure(Failure("password must not contain NUL characters")) }
        return .success(value)
    }

    /// A `send_message` payload `{"to": <user uuid>, "message": <text>, "client_id"?: <uuid>}`:
    /// the canonical recipient id, the text (non-empty, at most `maxBytes` of UTF-8, no NUL) and
    /// the client's UUID for the message, canonical, if it gave one.
    public static func outgoingMessage(_ payload: JSONValue?, maxBytes: Int) -> Result<(to: String, content: String, clientID: String?), Failure> {
        guard case .object(let fields)? = payload else { return .failure(Failure("payload must be an object {to, message}")) }
        guard let toText = fields["to"]?.stringValue, let to = uuid(toText) else { return .failure(Failure("to must be a user id (UUID)")) }
        guard let content = fields["message"]?.stringValue else { return .failure(Failure("message must be a string")) }
        // Most texts start with a visible ASCII character: no need to trim them to know.
        let startsVisible = content.utf8.first.map { $0 > 0x20 && $0 < 0x7F } ?? false
        guard startsVisible || !trimWhitespace(content).isEmpty else { return .failure(Failure("message must not be empty")) }
        guard content.utf8.count <= maxBytes else { return .failure(Failure("message must be at most \(maxBytes) bytes")) }
        guard !content.utf8.contains(0) else { return .failure(Failure("message must not contain NUL characters")) }
        var clientID: String?
        if let given = fields["client_id"], given != .null {
            guard let text = given.stringValue, let id = uuid(text) else { return .failure(Failure("client_id must be a UUID")) }
            clientID = id
        }
        return .success((to, content, clientID))
    }

    /// A canonical (lower-case) UUID, or nil.
    public static func uuid(_ value: some StringProtocol) -> String? {
        var text = String(value)
        return text.withUTF8 { utf8 -> String? in
            guard utf8.count == 36 else { return nil }
            var valid = true
            let lowered = String(unsafeUninitializedCapacity: 36) { out in
                for index in 0..<36 {
                    let byte = utf8[index]
                    if index == 8 || index == 13 || index == 18 || index == 23 {
                        valid = valid && byte == UInt8(ascii: "-")
                        out[index] = byte
                        continue
                    }
                    switch byte {
                    case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"): out[index] = byte
                    case UInt8(ascii: "A")...UInt8(ascii: "F"): out[index] = byte + 32
                    default:
                        valid = false
                        out[index] = UInt8(ascii: "0")
                    }
                }
                return 36
            }
            return valid ? lowered : nil
        }
    }

    static func trimWhitespace(_ value: String) -> String {
        let scalars = value.unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[first...last])
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    static func containsControlCharacter(_ value: String) -> Bool {
        value.unicodeScalars.contains(where: isControl)
    }
}
