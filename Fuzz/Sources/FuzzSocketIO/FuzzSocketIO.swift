// The Socket.IO v5 packet codec (Sources/SocketIO/SocketIOPacket.swift). Invariants for a
// packet that decodes:
// - it has the shape its type requires (an EVENT an array starting with a name, an ACK an id
//   and an array, …), an attachment count in 0...1000 only on binary types, a namespace
//   starting with `/` without a comma, an ack id ≥ 0;
// - encoded and decoded again it is equal, and encoding that gives the same bytes (one
//   canonical spelling);
// - as the text of an Engine.IO message it survives that layer too.
import FuzzSupport
import JSON
import SocketIO

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = inputBytes(start, count)
    let packet: SocketIOPacket
    do {
        packet = try SocketIOPacket.decode(input)
    } catch {
        require(!error.reason.isEmpty, "a refusal without a reason")
        return 0
    }
    let binary = packet.kind == .binaryEvent || packet.kind == .binaryAck
    require(binary ? (0...1000).contains(packet.attachments) : packet.attachments == 0, "attachments \(packet.attachments) on \(packet.kind)")
    // (By bytes: "/" and a combining mark after it are one Character.)
    require(packet.namespace.utf8.first == UInt8(ascii: "/") && !packet.namespace.utf8.contains(UInt8(ascii: ",")),
            "namespace \(packet.namespace.debugDescription)")
    require((packet.ackID ?? 0) >= 0, "ack id \(String(describing: packet.ackID))")
    switch packet.kind {
    case .event, .binaryEvent:
        let name = packet.data?.arrayValue?.first
        require(name?.stringValue != nil || name?.numberValue != nil, "an event without a name")
    case .ack, .binaryAck:
        require(packet.ackID != nil && packet.data?.arrayValue != nil, "an ack without an id or an array")
    case .disconnect:
        require(packet.data == nil && packet.ackID == nil, "a disconnect with content")
    case .connect:
        require(packet.ackID == nil && (packet.data == nil || packet.data?.objectValue != nil), "a connect of the wrong shape")
    case .connectError:
        require(packet.data?.objectValue != nil || packet.data?.stringValue != nil, "a connect error of the wrong shape")
    }

    let encoded = packet.encoded()
    let again: SocketIOPacket
    do {
        again = try SocketIOPacket.decode(encoded)
    } catch {
        fail("\(packet) encodes to \(String(decoding: encoded, as: UTF8.self).debugDescription), which does not decode: \(error)")
    }
    require(again == packet, "\(packet) decodes again as \(again)")
    require(again.encoded() == encoded, "\(packet) encodes differently the second time")

    let message = EngineIOPacket(.message, encoded)
    let carried = try? EngineIOPacket.decode(webSocketText: message.encodedText())
    require(carried.flatMap { try? SocketIOPacket.decode($0.data) } == packet, "\(packet) lost in an Engine.IO message")
    return 0
}
