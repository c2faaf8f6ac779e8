import Base64
import COpenSSL

/// The server side of the RFC 6455 opening handshake, independent of any HTTP type: the
/// caller passes the request's method, version and a header lookup (lower-case names).
public enum WebSocketHandshake {
    public static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    public struct Refusal: Error, Equatable, Sendable {
        public let status: Int
        public let message: String
        public let headers: [String: String]
    }

    /// The `Sec-WebSocket-Accept` value for a client's key.
    public static func acceptValue(forKey key: String) -> String {
        let input = Array((key + guid).utf8)
        var digest = [UInt8](repeating: 0, count: Int(SHA_DIGEST_LENGTH))
        _ = input.withUnsafeBufferPointer { SHA1($0.baseAddress, $0.count, &digest) }
        return Base64.encode(digest)
    }

    /// Checks an upgrade request; returns the accept value, or why not (426 for another
    /// version, with `Sec-WebSocket-Version: 13`; 400 otherwise).
    public static func validate(method: String, minorVersion: Int, header: (String) -> String?) -> Result<String, Refusal> {
        func refuse(_ message: String) -> Result<String, Refusal> { .failure(Refusal(status: 400, message: message, headers: [:])) }
        guard method == "GET", minorVersion >= 1 else { return refuse("WebSocket upgrade needs GET over HTTP/1.1") }
        guard tokens(header("upgrade")).contains("websocket") else { return refuse("Upgrade: websocket is required") }
        guard tokens(header("connection")).contains("upgrade") else { return refuse("Connection: Upgrade is required") }
        guard words(header("sec-websocket-version")) == ["13"] else {
            return .failure(Refusal(status: 426, message: "Only WebSocket version 13 is supported", headers: ["Sec-WebSocket-Version": "13"]))
        }
        let keyWords = words(header("sec-websocket-key"))
        guard keyWords.count == 1, let key = keyWords.first, Base64.decode(Array(key.utf8))?.count == 16 else {
            return refuse("Sec-WebSocket-Key must be 16 bytes in base64")
        }
        return .success(acceptValue(forKey: key))
    }

    /// The comma-separated elements of a list header, lower-cased, without surrounding white space.
    private static func tokens(_ value: String?) -> [String] {
        (value ?? "").lowercased().split(separator: ",").map { words(String($0)).joined(separator: " ") }
    }

    /// The value's words, split on spaces and tabs.
    private static func words(_ value: String?) -> [String] {
        (value ?? "").split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    }
}
