/// RFC 6455 opcodes.
public enum WebSocketOpcode: UInt8, Sendable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    public var isControl: Bool { rawValue & 0x8 != 0 }
}

/// RFC 6455 §7.4 close codes this server sends.
public enum WebSocketCloseCode: UInt16, Sendable {
    case normal = 1000
    case goingAway = 1001
    case protocolError = 1002
    case unsupportedData = 1003
    case invalidPayload = 1007
    case policyViolation = 1008
    case messageTooBig = 1009
    case internalError = 1011

    /// Whether a peer may send `code` in a close frame (1005, 1006, 1015 are never sent).
    public static func isValidOnTheWire(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }
}

/// What a decoder delivers: whole messages (fragments joined) and control frames.
public enum WebSocketMessage: Equatable, Sendable {
    case text([UInt8])
    case binary([UInt8])
    case ping([UInt8])
    case pong([UInt8])
    /// A close frame: its code (nil when it had none) and reason.
    case close(code: UInt16?, reason: String)
}

/// Why the peer's bytes are refused, with the close code to answer.
public struct WebSocketProtocolError: Error, Equatable, Sendable {
    public let code: WebSocketCloseCode
    public let reason: String

    public init(_ code: WebSocketCloseCode, _ reason: String) {
        self.code = code
        self.reason = reason
    }
}

/// Frames bytes for sending.
public enum WebSocketFrameEncoder {
    /// One frame. `maskingKey` is required from clients and forbidden from servers.
    public static func frame(_ opcode: WebSocketOpcode, payload: some Collection<UInt8>, fin: Bool = true,
                             maskingKey: (UInt8, UInt8, UInt8, UInt8)? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + 14)
        appendFrame(opcode, payload: payload, fin: fin, maskingKey: maskingKey, to: &out)
        return out
    }

    /// The same for an array: this one is specialised (the generic one is not, across modules)
    /// and is what every frame the server sends goes through.
    public static func appendFrame(_ opcode: WebSocketOpcode, payload: [UInt8], fin: Bool = true,
                                   maskingKey: (UInt8, UInt8, UInt8, UInt8)? = nil, to out: inout [UInt8]) {
        payload.withUnsafeBufferPointer { appendFrame(opcode, payload: $0, fin: fin, maskingKey: maskingKey, to: &out) }
    }

    public static func appendFrame(_ opcode: WebSocketOpcode, payload: UnsafeBufferPointer<UInt8>, fin: Bool = true,
                                   maskingKey: (UInt8, UInt8, UInt8, UInt8)? = nil, to out: inout [UInt8]) {
        appendHeader(opcode, length: payload.count, fin: fin, masked: maskingKey != nil, to: &out)
        if let key = maskingKey {
            out.append(key.0)
            out.append(key.1)
            out.append(key.2)
            out.append(key.3)
            let payloadStart = out.count
            out.append(contentsOf: payload)
            out.withUnsafeMutableBytes { raw in
                applyMask(key, to: UnsafeMutableRawBufferPointer(rebasing: raw[payloadStart...]))
            }
        } else {
            out.append(contentsOf: payload)
        }
    }

    private static func appendHeader(_ opcode: WebSocketOpcode, length: Int, fin: Bool, masked: Bool, to out: inout [UInt8]) {
        out.append((fin ? 0x80 : 0) | opcode.rawValue)
        let maskBit: UInt8 = masked ? 0x80 : 0
        if length < 126 {
            out.append(maskBit | UInt8(length))
        } else if length <= 0xFFFF {
            out.append(maskBit | 126)
            out.append(UInt8(length >> 8))
            out.append(UInt8(length & 0xFF))
        } else {
            out.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((UInt64(length) >> UInt64(shift)) & 0xFF)) }
        }
    }

    public static func appendFrame(_ opcode: WebSocketOpcode, payload: some Collection<UInt8>, fin: Bool = true,
                                   maskingKey: (UInt8, UInt8, UInt8, UInt8)? = nil, to out: inout [UInt8]) {
        let done: Void? = payload.withContiguousStorageIfAvailable { appendFrame(opcode, payload: $0, fin: fin, maskingKey: maskingKey, to: &out) }
        if done == nil { appendFrame(opcode, payload: Array(payload), fin: fin, maskingKey: maskingKey, to: &out) }
    }

    /// XORs `bytes` with the repeating 4-byte `key` (RFC 6455 §5.3), a word at a time; masking
    /// and unmasking are the same operation.
    public static func applyMask(_ key: (UInt8, UInt8, UInt8, UInt8), to bytes: UnsafeMutableRawBufferPointer) {
        let inOrder = UInt32(key.0) | UInt32(key.1) << 8 | UInt32(key.2) << 16 | UInt32(key.3) << 24
        let word = UInt32(littleEndian: inOrder)  // as the key's bytes load from memory
        let wide = UInt64(word) | UInt64(word) << 32
        let count = bytes.count
        var i = 0
        while i + 8 <= count {
            bytes.storeBytes(of: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ wide, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        var rest = inOrder
        if i + 4 <= count {
            bytes.storeBytes(of: bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self) ^ word, toByteOffset: i, as: UInt32.self)
            i += 4
        }
        while i < count {
            bytes[i] ^= UInt8(truncatingIfNeeded: rest)
            rest >>= 8
            i += 1
        }
    }

    /// A close frame's payload: the code, then the reason cut to fit 125 bytes on a character boundary.
    public static func closePayload(_ code: WebSocketCloseCode, reason: String = "") -> [UInt8] {
        var out = [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xFF)]
        var reasonBytes = Array(reason.utf8)
        if reasonBytes.count > 123 {
            reasonBytes = Array(reasonBytes.prefix(123))
            while let last = reasonBytes.last, last & 0xC0 == 0x80 { reasonBytes.removeLast() }
            if let last = reasonBytes.last, last >= 0xC0 { reasonBytes.removeLast() }
        }
        out.append(contentsOf: reasonBytes)
        return out
    }
}
