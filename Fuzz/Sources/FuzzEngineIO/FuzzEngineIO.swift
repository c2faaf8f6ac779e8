// The Engine.IO v4 packet codec (Sources/SocketIO/EngineIOPacket.swift), over the input as a
// WebSocket text frame and as a polling body. Invariants:
// - a packet decoded from a text frame encodes back to exactly the frame's bytes;
// - a polling body that decodes encodes back to exactly its bytes (base64 has one spelling
//   per byte string), and decoding that again gives equal packets; every packet of it is
//   text without the separator, or binary;
// - what is refused is refused for a reason (a non-empty one).
import FuzzSupport
import SocketIO

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = inputBytes(start, count)

    do {
        let packet = try EngineIOPacket.decode(webSocketText: input)
        require(!packet.isBinary, "a text frame decoded as binary")
        require(packet.encodedText() == input, "\(packet) encodes to \(packet.encodedText()), not \(input)")
        let again = try? EngineIOPacket.decode(webSocketText: packet.encodedText())
        require(again == packet, "\(packet) decodes again as \(String(describing: again))")
    } catch {
        require(!error.reason.isEmpty, "a refusal without a reason")
    }

    do {
        let packets = try EngineIOPacket.decode(payload: input)
        require(!packets.isEmpty, "a body of no packet")
        for packet in packets where !packet.isBinary {
            require(!packet.data.contains(0x1E), "a text packet holding the separator: \(packet)")
        }
        let encoded = EngineIOPacket.encode(payload: packets)
        require(encoded == input, "\(packets) encodes to \(encoded), not \(input)")
        let again = try? EngineIOPacket.decode(payload: encoded)
        require(again == packets, "\(packets) decodes again as \(String(describing: again))")
    } catch {
        require(!error.reason.isEmpty, "a refusal without a reason")
    }
    return 0
}
