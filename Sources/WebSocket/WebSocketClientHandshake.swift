import Base64

/// The client side of the RFC 6455 opening handshake: the upgrade request with a fresh key,
/// and the check of the server's answer. Used by the client library, the bench and the tests.
public struct WebSocketClientHandshake: Sendable {
    /// Why the server's answer is not an accepted upgrade.
    public struct Refusal: Error, CustomStringConvertible, Sendable {
        /// The answer's status line, e.g. `HTTP/1.1 400 Bad Request`.
        public let statusLine: String
        public let reason: String
        public var description: String {
            statusLine.isEmpty ? "WebSocket upgrade failed: \(reason)" : "WebSocket upgrade refused: \(statusLine) (\(reason))"
        }
    }

    /// `Sec-WebSocket-Key`: 16 random bytes in base64.
    public let key: String

    public init() {
        var generator = SystemRandomNumberGenerator()
        self.init(keyBytes: (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    public init(keyBytes: [UInt8]) {
        key = Base64.encode(keyBytes)
    }

    /// `GET target` with the upgrade headers, and any `extraHeaders`.
    public func request(target: String, host: String, extraHeaders: [(name: String, value: String)] = []) -> [UInt8] {
        var head = "GET \(target) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        head += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        for header in extraHeaders { head += "\(header.name): \(header.value)\r\n" }
        return Array((head + "\r\n").utf8)
    }

    /// Reads the server's answer from the bytes received so far: nil while its head is
    /// incomplete; the head's length (frames may follow it in `received`) when it is a 101
    /// with the `Sec-WebSocket-Accept` this key calls for; a refusal otherwise.
    public func headLength(ofResponse received: some Collection<UInt8>) throws(Refusal) -> Int? {
        let bytes = Array(received)
        guard let end = Self.endOfHead(bytes) else { return nil }
        let lines = String(decoding: bytes[..<end], as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = String(lines.first ?? "")
        let status = statusLine.split(separator: " ", maxSplits: 2)
        guard status.count >= 2, status[0].hasPrefix("HTTP/1."), status[1] == "101" else {
            throw Refusal(statusLine: statusLine, reason: "not 101 Switching Protocols")
        }
        let expected = WebSocketHandshake.acceptValue(forKey: key)
        let accepted = lines.dropFirst().contains { line in
            guard let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == "sec-websocket-accept" else { return false }
            return line[line.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" }) == [Substring(expected)]
        }
        guard accepted else { throw Refusal(statusLine: statusLine, reason: "no Sec-WebSocket-Accept for our key") }
        return end + 4
    }

    /// Reads the server's answer through `read` (what arrived next; empty when the server
    /// closed) until its head is complete and accepted; returns the bytes that came after the
    /// head (the first frames). Throws a `Refusal`, or `read`'s error.
    public func awaitResponse(_ read: () throws -> [UInt8]) throws -> [UInt8] {
        var received: [UInt8] = []
        while true {
            let chunk = try read()
            guard !chunk.isEmpty else {
                throw Refusal(statusLine: "", reason: "the server closed the connection during the handshake")
            }
            received += chunk
            if let length = try headLength(ofResponse: received) { return Array(received[length...]) }
        }
    }

    /// Where `\r\n\r\n` starts, or nil.
    private static func endOfHead(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4) where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }
}
