import JSON

/// Socket.IO protocol v5 packets (github.com/socketio/socket.io-protocol), in their text form:
/// `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`. Binary attachments travel as
/// separate Engine.IO binary messages after the text; `data` keeps their placeholders.
public struct SocketIOPacket: Equatable, Sendable {
    public enum Kind: UInt8, Sendable {
        case connect = 0, disconnect, event, ack, connectError, binaryEvent, binaryAck
    }

    public var kind: Kind
    public var namespace: String
    public var ackID: Int?
    public var data: JSONValue?
    public var attachments: Int

    public init(_ kind: Kind, namespace: String = "/", ackID: Int? = nil, data: JSONValue? = nil, attachments: Int = 0) {
        self.kind = kind
        self.namespace = namespace
        self.ackID = ackID
        self.data = data
        self.attachments = attachments
    }

    public struct DecodingError: Error, Equatable, Sendable {
        public let reason: String
    }

    static let maxAttachments = 1000

    /// Decodes and checks the shape each type must have; anything else is a `DecodingError`
    /// (the connection is then closed, as the reference server does).
    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> SocketIOPacket {
        var index = 0
        func digits() -> Int? {
            var value = 0, count = 0
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                guard count < 15 else { return nil }
                value = value * 10 + Int(bytes[index] - UInt8(ascii: "0"))
                count += 1
                index += 1
            }
            return count > 0 ? value : nil
        }
        guard let first = bytes.first, first >= UInt8(ascii: "0"), let kind = Kind(rawValue: first - UInt8(ascii: "0")) else {
            throw DecodingError(reason: "unknown packet type")
        }
        index = 1
        var attachments = 0
        if kind == .binaryEvent || kind == .binaryAck {
            guard let count = digits(), index < bytes.count, bytes[index] == UInt8(ascii: "-"), count <= maxAttachments else {
                throw DecodingError(reason: "invalid attachment count")
            }
            attachments = count
            index += 1
        }
        var namespace = "/"
        if index < bytes.count, bytes[index] == UInt8(ascii: "/") {
            let start = index
            while index < bytes.count, bytes[index] != UInt8(ascii: ",") { index += 1 }
            guard let name = String(validating: bytes[start..<index], as: UTF8.self) else { throw DecodingError(reason: "invalid namespace") }
            namespace = name
            if index < bytes.count { index += 1 }  // the comma
        }
        var ackID: Int?
        if index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            guard let id = digits() else { throw DecodingError(reason: "invalid ack id") }
            ackID = id
        }
        var data: JSONValue?
        if index < bytes.count {
            do { data = try JSONParser.parse(bytes[index...]) } catch { throw DecodingError(reason: "invalid JSON payload") }
        }
        let packet = SocketIOPacket(kind, namespace: namespace, ackID: ackID, data: data, attachments: attachments)
        try packet.checkShape()
        return packet
    }

    private func checkShape() throws(DecodingError) {
        switch kind {
        case .connect:
            guard ackID == nil else { throw DecodingError(reason: "CONNECT with an ack id") }
            if let data, data.objectValue == nil { throw DecodingError(reason: "CONNECT payload must be an object") }
        case .disconnect:
            guard data == nil, ackID == nil else { throw DecodingError(reason: "DISCONNECT carries nothing") }
        case .event, .binaryEvent:
            guard let array = data?.arrayValue, let name = array.first, name.stringValue != nil || name.numberValue != nil else {
                throw DecodingError(reason: "EVENT payload must be an array starting with the event name")
            }
        case .ack, .binaryAck:
            guard ackID != nil, data?.arrayValue != nil else { throw DecodingError(reason: "ACK needs an id and an array") }
        case .connectError:
            guard data?.objectValue != nil || data?.stringValue != nil else { throw DecodingError(reason: "CONNECT_ERROR payload") }
        }
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        Self.appendHeader(kind, namespace: namespace, ackID: ackID, attachments: attachments, to: &out)
        if let data { JSONWriter.write(data, into: &out) }
        return out
    }

    /// Everything before the JSON: type, attachment count, namespace, ack id. Lets a hot path
    /// write its JSON straight after it, without building a `JSONValue`.
    public static func appendHeader(_ kind: Kind, namespace: String = "/", ackID: Int? = nil, attachments: Int = 0, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "0") + kind.rawValue)
        if kind == .binaryEvent || kind == .binaryAck {
            JSONWriter.writeInteger(Int64(attachments), into: &out)
            out.append(UInt8(ascii: "-"))
        }
        if namespace != "/" {
            out.append(contentsOf: namespace.utf8)
            out.append(UInt8(ascii: ","))
        }
        if let ackID { JSONWriter.writeInteger(Int64(ackID), into: &out) }
    }
}
