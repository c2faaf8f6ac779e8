/// An incremental RFC 6455 decoder: feed it the bytes as they arrive, take whole messages out.
/// It checks everything the RFC asks of a peer's frames: masking by role, reserved bits,
/// opcodes, control frames (≤ 125 bytes, never fragmented, allowed between fragments),
/// continuation order, UTF-8 of text (across fragments, failing fast), close payloads — and a
/// frame's or message's declared length against the limit before any byte of it is buffered.
public struct WebSocketDecoder: Sendable {
    public enum Role: Sendable {
        /// A server decodes a client's frames: they must be masked.
        case server
        /// A client decodes a server's frames: they must not be.
        case client
    }

    public let role: Role
    public let maxMessageBytes: Int
    private var buffer: [UInt8] = []
    private var bufferStart = 0
    private var fragmentOpcode: WebSocketOpcode?
    private var fragments: [UInt8] = []
    private var utf8 = UTF8Validator()

    public init(role: Role, maxMessageBytes: Int) {
        self.role = role
        self.maxMessageBytes = maxMessageBytes
    }

    public mutating func feed(_ bytes: some Collection<UInt8>) {
        if bufferStart > 0 && bufferStart == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            bufferStart = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Frees the input buffer when it holds nothing: an idle connection then keeps no
    /// capacity from the last message it read.
    public mutating func releaseBufferIfEmpty() {
        guard bufferStart == buffer.count, fragmentOpcode == nil else { return }
        buffer = []
        bufferStart = 0
    }

    /// The next whole message, nil when more bytes are needed.
    public mutating func next() throws(WebSocketProtocolError) -> WebSocketMessage? {
        while true {
            guard let frame = try nextFrame() else {
                if bufferStart > 4096 && bufferStart * 2 > buffer.count {
                    buffer.removeFirst(bufferStart)
                    bufferStart = 0
                }
                return nil
            }
            if let message = try assemble(frame) { return message }
        }
    }

    private struct Frame {
        let fin: Bool
        let opcode: WebSocketOpcode
        let payload: [UInt8]
    }

    private mutating func nextFrame() throws(WebSocketProtocolError) -> Frame? {
        let available = buffer.count - bufferStart
        guard available >= 2 else { return nil }
        let b0 = buffer[bufferStart], b1 = buffer[bufferStart + 1]
        guard b0 & 0x70 == 0 else { throw WebSocketProtocolError(.protocolError, "reserved bits set") }
        guard let opcode = WebSocketOpcode(rawValue: b0 & 0x0F) else { throw WebSocketProtocolError(.protocolError, "unknown opcode") }
        let fin = b0 & 0x80 != 0
        let masked = b1 & 0x80 != 0
        switch role {
        case .server: guard masked else { throw WebSocketProtocolError(.protocolError, "client frames must be masked") }
        case .client: guard !masked else { throw WebSocketProtocolError(.protocolError, "server frames must not be masked") }
        }
        let shortLength = Int(b1 & 0x7F)
        if opcode.isControl {
            guard fin else { throw WebSocketProtocolError(.protocolError, "fragmented control frame") }
            guard shortLength <= 125 else { throw WebSocketProtocolError(.protocolError, "control frame over 125 bytes") }
        }
        var headerLength = 2
        var length = shortLength
        if shortLength == 126 {
            guard available >= 4 else { return nil }
            length = Int(buffer[bufferStart + 2]) << 8 | Int(buffer[bufferStart + 3])
            headerLength = 4
        } else if shortLength == 127 {
            guard available >= 10 else { return nil }
            var value: UInt64 = 0
            for i in 0..<8 { value = value << 8 | UInt64(buffer[bufferStart + 2 + i]) }
            guard value >> 63 == 0 else { throw WebSocketProtocolError(.protocolError, "length has its top bit set") }
            guard value <= UInt64(maxMessageBytes) else { throw WebSocketProtocolError(.messageTooBig, "message too big") }
            length = Int(value)
            headerLength = 10
        }
        // The limit holds for a whole message, fragments together, before anything is buffered.
        if !opcode.isControl && fragments.count + length > maxMessageBytes {
            throw WebSocketProtocolError(.messageTooBig, "message too big")
        }
        if masked { headerLength += 4 }
        guard available >= headerLength + length else { return nil }
        let payloadStart = bufferStart + headerLength
        var payload = Array(buffer[payloadStart..<(payloadStart + length)])
        if masked {
            let key = (buffer[payloadStart - 4], buffer[payloadStart - 3], buffer[payloadStart - 2], buffer[payloadStart - 1])
            payload.withUnsafeMutableBytes { WebSocketFrameEncoder.applyMask(key, to: $0) }
        }
        bufferStart += headerLength + length
        return Frame(fin: fin, opcode: opcode, payload: payload)
    }

    private mutating func assemble(_ frame: Frame) throws(WebSocketProtocolError) -> WebSocketMessage? {
        switch frame.opcode {
        case .ping: return .ping(frame.payload)
        case .pong: return .pong(frame.payload)
        case .close: return try Self.closeMessage(frame.payload)
        case .text, .binary:
            guard fragmentOpcode == nil else { throw WebSocketProtocolError(.protocolError, "new message before the last one ended") }
            if frame.opcode == .text {
                utf8.reset()
                guard utf8.feed(frame.payload) else { throw WebSocketProtocolError(.invalidPayload, "invalid UTF-8 in text message") }
            }
            if frame.fin {
                if frame.opcode == .text {
                    guard utf8.isComplete else { throw WebSocketProtocolError(.invalidPayload, "invalid UTF-8 in text message") }
                    return .text(frame.payload)
                }
                return .binary(frame.payload)
            }
            fragmentOpcode = frame.opcode
            fragments = frame.payload
            return nil
        case .continuation:
            guard let opcode = fragmentOpcode else { throw WebSocketProtocolError(.protocolError, "continuation without a message") }
            if opcode == .text {
                guard utf8.feed(frame.payload) else { throw WebSocketProtocolError(.invalidPayload, "invalid UTF-8 in text message") }
            }
            fragments.append(contentsOf: frame.payload)
            guard frame.fin else { return nil }
            let payload = fragments
            fragments = []
            fragmentOpcode = nil
            if opcode == .text {
                guard utf8.isComplete else { throw WebSocketProtocolError(.invalidPayload, "invalid UTF-8 in text message") }
                return .text(payload)
            }
            return .binary(payload)
        }
    }

    private static func closeMessage(_ payload: [UInt8]) throws(WebSocketProtocolError) -> WebSocketMessage {
        if payload.isEmpty { return .close(code: nil, reason: "") }
        guard payload.count >= 2 else { throw WebSocketProtocolError(.protocolError, "close payload of one byte") }
        let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
        guard WebSocketCloseCode.isValidOnTheWire(code) else { throw WebSocketProtocolError(.protocolError, "invalid close code \(code)") }
        guard let reason = String(validating: payload[2...], as: UTF8.self) else {
            throw WebSocketProtocolError(.invalidPayload, "invalid UTF-8 in close reason")
        }
        return .close(code: code, reason: reason)
    }
}
