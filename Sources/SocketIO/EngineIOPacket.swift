import Base64

/// Engine.IO protocol v4 packets (github.com/socketio/engine.io-protocol).
public struct EngineIOPacket: Equatable, Sendable {
    public enum Kind: UInt8, Sendable {
        case open = 0, close, ping, pong, message, upgrade, noop
    }

    public let kind: Kind
    /// The text after the type digit, or a binary message's bytes.
    public let data: [UInt8]
    public let isBinary: Bool

    public init(_ kind: Kind, _ data: [UInt8] = [], isBinary: Bool = false) {
        self.kind = kind
        self.data = data
        self.isBinary = isBinary
    }

    public init(_ kind: Kind, text: String) {
        self.init(kind, Array(text.utf8))
    }

    public static func binary(_ bytes: [UInt8]) -> EngineIOPacket { EngineIOPacket(.message, bytes, isBinary: true) }

    public struct DecodingError: Error, Equatable, Sendable {
        public let reason: String
    }

    static let separator: UInt8 = 0x1E

    /// A packet from a WebSocket text frame (`4hello`) — or, `binary`, a binary message.
    public static func decode(webSocketText bytes: some Collection<UInt8>) throws(DecodingError) -> EngineIOPacket {
        guard let first = bytes.first, first >= UInt8(ascii: "0"), let kind = Kind(rawValue: first - UInt8(ascii: "0")) else {
            throw DecodingError(reason: "unknown packet type")
        }
        return EngineIOPacket(kind, Array(bytes.dropFirst()))
    }

    /// The packets of a polling POST body: joined by 0x1E, binary ones as `b` + base64.
    public static func decode(payload bytes: [UInt8]) throws(DecodingError) -> [EngineIOPacket] {
        guard !bytes.isEmpty else { throw DecodingError(reason: "empty payload") }
        var packets: [EngineIOPacket] = []
        for part in bytes.split(separator: separator, omittingEmptySubsequences: false) {
            if part.first == UInt8(ascii: "b") {
                guard let decoded = Base64.decode(part.dropFirst()) else { throw DecodingError(reason: "invalid base64") }
                packets.append(.binary(decoded))
            } else {
                packets.append(try decode(webSocketText: part))
            }
        }
        return packets
    }

    /// `4hello`, the packet as text (a binary message as `b` + base64, for polling).
    public func encodedText() -> [UInt8] {
        if isBinary { return Array(("b" + Base64.encode(data)).utf8) }
        return [UInt8(ascii: "0") + kind.rawValue] + data
    }

    /// A polling response body: the packets joined by 0x1E.
    public static func encode(payload packets: [EngineIOPacket]) -> [UInt8] {
        var out: [UInt8] = []
        for (i, packet) in packets.enumerated() {
            if i > 0 { out.append(separator) }
            out.append(contentsOf: packet.encodedText())
        }
        return out
    }
}
