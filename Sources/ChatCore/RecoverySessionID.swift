import JWT

/// The `pid` of socket.io's connection state recovery: whose session it is and where in their
/// stream it began (`cursor.nonce.mac`). Nothing is kept on the server — the stream is in the
/// database and the pid carries the rest, sealed with the server's secret — so a pid outlives
/// a restart and works on any process sharing the secret, and one made for another user, or by
/// another server, is refused. The nonce makes each session's pid its own: socket.io clients
/// tell a recovered session by the CONNECT reply repeating their pid.
public struct RecoverySessionID: Sendable {
    private let signer: JWTSigner

    public init(signer: JWTSigner) {
        self.signer = signer
    }

    /// A new session of `userID` starting after stream position `start`.
    public func make(userID: String, start: Int64) -> String {
        var nonce: UInt64 = 0
        while nonce == 0 { nonce = UInt64.random(in: 1...UInt64.max) }
        let body = StreamCursor.encode(start) + "." + Self.hex(nonce)
        return body + "." + mac(body, userID: userID)
    }

    /// Where the session began, if `pid` is one this server made for `userID`.
    public func start(of pid: String, userID: String) -> Int64? {
        let parts = pid.split(separator: ".", omittingEmptySubsequences: false)
        guard pid.utf8.count <= 80, parts.count == 3, parts[1].utf8.count == 16,
              let start = StreamCursor.decode(String(parts[0])) else { return nil }
        let body = pid.utf8.prefix(pid.utf8.count - parts[2].utf8.count - 1)
        guard constantTimeEqual(Array(parts[2].utf8), Array(mac(String(decoding: body, as: UTF8.self), userID: userID).utf8)) else { return nil }
        return start
    }

    private func mac(_ body: String, userID: String) -> String {
        let code = signer.authenticationCode(Array("socket.io pid\u{0}\(userID)\u{0}\(body)".utf8))
        return code.prefix(12).map { Self.hex(UInt64($0), digits: 2) }.joined()
    }

    private static func hex(_ value: UInt64, digits: Int = 16) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
