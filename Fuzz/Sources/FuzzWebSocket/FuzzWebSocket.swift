// The RFC 6455 frame decoder (Sources/WebSocket/WebSocketDecoder.swift), as a server (masked
// frames) and as a client (unmasked), with a large and a small message limit. Invariants:
// - the input whole, one byte at a time and in random pieces (releasing the idle buffer now
//   and then, as WebSocketConnection does) give the same messages and the same error;
// - every message is one the RFC allows: text is valid UTF-8, a control payload ≤ 125 bytes, a
//   data message within the limit, a close code one a peer may send;
// - every message, framed again by WebSocketFrameEncoder, decodes to itself; and when the
//   input starts with a whole unfragmented frame whose length is in its shortest form (the one
//   encoding of it), framing its message again gives back exactly those bytes.
import FuzzSupport
import WebSocket

struct Outcome: Equatable {
    var messages: [WebSocketMessage] = []
    var error: WebSocketProtocolError?
}

func run(_ input: [UInt8], pieces: [Range<Int>], role: WebSocketDecoder.Role, limit: Int, release: ((Int) -> Bool)? = nil) -> Outcome {
    var decoder = WebSocketDecoder(role: role, maxMessageBytes: limit)
    var outcome = Outcome()
    for (index, piece) in pieces.enumerated() {
        decoder.feed(input[piece])
        do {
            while let message = try decoder.next() {
                check(message, limit: limit)
                outcome.messages.append(message)
            }
        } catch {
            outcome.error = error
            return outcome
        }
        if let release, release(index) { decoder.releaseBufferIfEmpty() }
    }
    return outcome
}

func check(_ message: WebSocketMessage, limit: Int) {
    switch message {
    case .text(let bytes):
        require(String(validating: bytes, as: UTF8.self) != nil, "text message of invalid UTF-8")
        require(bytes.count <= limit, "text of \(bytes.count) bytes over the limit \(limit)")
    case .binary(let bytes):
        require(bytes.count <= limit, "binary of \(bytes.count) bytes over the limit \(limit)")
    case .ping(let bytes), .pong(let bytes):
        require(bytes.count <= 125, "control payload of \(bytes.count) bytes")
    case .close(let code, let reason):
        if let code { require(WebSocketCloseCode.isValidOnTheWire(code), "close code \(code)") } else { require(reason.isEmpty, "a reason without a code") }
        require(reason.utf8.count <= 123, "close reason of \(reason.utf8.count) bytes")
    }
}

/// The message as one frame.
func frame(_ message: WebSocketMessage, key: (UInt8, UInt8, UInt8, UInt8)?) -> [UInt8] {
    switch message {
    case .text(let bytes): return WebSocketFrameEncoder.frame(.text, payload: bytes, maskingKey: key)
    case .binary(let bytes): return WebSocketFrameEncoder.frame(.binary, payload: bytes, maskingKey: key)
    case .ping(let bytes): return WebSocketFrameEncoder.frame(.ping, payload: bytes, maskingKey: key)
    case .pong(let bytes): return WebSocketFrameEncoder.frame(.pong, payload: bytes, maskingKey: key)
    case .close(let code, let reason):
        var payload: [UInt8] = []
        if let code { payload = [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8) }
        return WebSocketFrameEncoder.frame(.close, payload: payload, maskingKey: key)
    }
}

/// The length of the input's first frame when it is whole, unfragmented, of a known opcode,
/// masked as `role` wants, and its length in the shortest form; nil otherwise.
func canonicalFirstFrame(_ input: [UInt8], role: WebSocketDecoder.Role) -> (length: Int, key: (UInt8, UInt8, UInt8, UInt8)?)? {
    guard input.count >= 2 else { return nil }
    let b0 = input[0], b1 = input[1]
    guard b0 & 0xF0 == 0x80, [0x1, 0x2, 0x8, 0x9, 0xA].contains(b0 & 0x0F) else { return nil }
    let masked = b1 & 0x80 != 0
    guard masked == (role == .server) else { return nil }
    var header = 2
    var length = Int(b1 & 0x7F)
    if length == 126 {
        guard input.count >= 4 else { return nil }
        length = Int(input[2]) << 8 | Int(input[3])
        guard length >= 126 else { return nil }
        header = 4
    } else if length == 127 {
        guard input.count >= 10, input[2] == 0, input[3] == 0, input[4] == 0, input[5] == 0 else { return nil }
        length = input[6..<10].reduce(0) { $0 << 8 | Int($1) }
        guard length > 0xFFFF else { return nil }
        header = 10
    }
    var key: (UInt8, UInt8, UInt8, UInt8)?
    if masked {
        guard input.count >= header + 4 else { return nil }
        key = (input[header], input[header + 1], input[header + 2], input[header + 3])
        header += 4
    }
    guard input.count >= header + length else { return nil }
    return (header + length, key)
}

let fixedKey: (UInt8, UInt8, UInt8, UInt8) = (0x12, 0x34, 0x56, 0x78)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = inputBytes(start, count)
    var generator = SplitMix(seeding: input)
    for role in [WebSocketDecoder.Role.server, .client] {
        for limit in [1 << 20, 100] {
            let whole = run(input, pieces: Split.whole(input.count), role: role, limit: limit)
            let bytes = run(input, pieces: Split.bytes(input.count), role: role, limit: limit)
            require(whole == bytes, "\(role) \(limit): whole \(whole) != byte by byte \(bytes)")
            let releaseSeed = generator.next()
            let pieces = run(input, pieces: Split.random(input.count, maxPiece: 32, using: &generator), role: role, limit: limit,
                             release: { ($0 &+ Int(truncatingIfNeeded: releaseSeed)) % 3 == 0 })
            require(whole == pieces, "\(role) \(limit): whole \(whole) != in pieces \(pieces)")

            for message in whole.messages {
                let framed = frame(message, key: role == .server ? fixedKey : nil)
                let again = run(framed, pieces: Split.whole(framed.count), role: role, limit: limit)
                require(again == Outcome(messages: [message]), "\(message) framed again decodes to \(again)")
            }
            if let first = canonicalFirstFrame(input, role: role), let message = whole.messages.first {
                let framed = frame(message, key: first.key)
                require(framed[...] == input[..<first.length], "\(message) framed again is \(framed), the input's frame \(input[..<first.length])")
            }
        }
    }
    return 0
}
