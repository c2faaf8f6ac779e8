import Foundation
import WebSocket

/// A WebSocket client at the byte level, for sending what no well-behaved client would.
final class RawWebSocket {
    let connection: RawConnection
    private var decoder = WebSocketDecoder(role: .client, maxMessageBytes: 16 << 20)

    /// Opens `path` with the RFC 6455 handshake; throws unless the answer is 101.
    init(port: Int, path: String) throws {
        connection = try RawConnection(port: port)
        let handshake = WebSocketClientHandshake()
        connection.send(handshake.request(target: path, host: "127.0.0.1:\(port)"))
        let deadline = Date().addingTimeInterval(10)
        do {
            decoder.feed(try handshake.awaitResponse { [connection] in
                // nil: no answer within the ten seconds; an empty read (the server closed) ends it too.
                guard let chunk = connection.receive(timeout: max(0, deadline.timeIntervalSinceNow)) else {
                    throw ServerProcess.Failure(description: "no answer to the WebSocket handshake within 10 s")
                }
                return chunk
            })
        } catch {
            throw ServerProcess.Failure(description: "no WebSocket upgrade: \(error)")
        }
    }

    func send(_ opcode: WebSocketOpcode, _ payload: [UInt8], fin: Bool = true, masked: Bool = true) {
        connection.send(WebSocketFrameEncoder.frame(opcode, payload: payload, fin: fin, maskingKey: masked ? (1, 2, 3, 4) : nil))
    }

    func sendText(_ text: String) { send(.text, Array(text.utf8)) }

    /// The next message, or nil on time-out or end of stream.
    func receive(timeout: TimeInterval = 10) -> WebSocketMessage? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let message = try? decoder.next() { return message }
            guard Date() < deadline, let chunk = connection.receive(timeout: deadline.timeIntervalSinceNow), !chunk.isEmpty else { return nil }
            decoder.feed(chunk)
        }
    }

    func receiveText(timeout: TimeInterval = 10) -> String? {
        while let message = receive(timeout: timeout) {
            if case .text(let bytes) = message { return String(decoding: bytes, as: UTF8.self) }
            if case .close = message { return nil }
        }
        return nil
    }

    /// Reads until the server's close frame; returns its code (nil when the stream just ended).
    func receiveClose(timeout: TimeInterval = 10) -> UInt16? {
        while let message = receive(timeout: timeout) {
            if case .close(let code, _) = message { return code }
        }
        return nil
    }
}
