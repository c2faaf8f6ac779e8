import WebSocket
import XCTest

final class WebSocketDecoderTests: XCTestCase {
    let key: (UInt8, UInt8, UInt8, UInt8) = (0x37, 0xFA, 0x21, 0x3D)

    private func masked(_ opcode: WebSocketOpcode, _ payload: [UInt8], fin: Bool = true) -> [UInt8] {
        WebSocketFrameEncoder.frame(opcode, payload: payload, fin: fin, maskingKey: key)
    }

    /// Feeds all bytes (in pieces of `step`) and collects messages, or the first error.
    private func decode(_ bytes: [UInt8], step: Int = .max, role: WebSocketDecoder.Role = .server, limit: Int = 1 << 20)
        -> ([WebSocketMessage], WebSocketProtocolError?) {
        var decoder = WebSocketDecoder(role: role, maxMessageBytes: limit)
        var messages: [WebSocketMessage] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + max(1, min(step, bytes.count)))
            decoder.feed(bytes[offset..<end])
            offset = end
            do {
                while let message = try decoder.next() { messages.append(message) }
            } catch {
                return (messages, error)
            }
        }
        return (messages, nil)
    }

    func testRFC6455Examples() {
        // §5.7: a masked "Hello" from a client.
        XCTAssertEqual(decode([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]).0, [.text(Array("Hello".utf8))])
        // Unmasked server frames, decoded by a client; fragmented "Hel" + "lo".
        XCTAssertEqual(decode([0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F], role: .client).0, [.text(Array("Hello".utf8))])
        XCTAssertEqual(decode([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F], role: .client).0, [.ping(Array("Hello".utf8))])
    }

    func testMaskingAgreesWithTheRFCDefinitionForEveryTailLength() {
        for size in 0...33 {
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let keyBytes = [key.0, key.1, key.2, key.3]
            let expected = payload.indices.map { payload[$0] ^ keyBytes[$0 % 4] }
            let frame = masked(.binary, payload)
            XCTAssertEqual(Array(frame.suffix(size)), expected, "size \(size)")
            var roundTrip = expected
            roundTrip.withUnsafeMutableBytes { WebSocketFrameEncoder.applyMask(key, to: $0) }
            XCTAssertEqual(roundTrip, payload)
        }
    }

    func testLengthsOf7_16And64BitsWholeAndByteByByte() {
        for size in [0, 125, 126, 65535, 65536, 100_000] {
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0) }
            for step in size > 70_000 ? [Int.max, 4093] : [Int.max, 1, 7] {
                let (messages, error) = decode(masked(.binary, payload), step: step)
                XCTAssertNil(error)
                XCTAssertEqual(messages, [.binary(payload)], "size \(size) step \(step)")
            }
        }
    }

    func testControlFramesBetweenFragmentsAndUTF8SplitAcrossThem() {
        let text = Array("κόσμε😀".utf8)
        let bytes = masked(.text, Array(text[0..<3]), fin: false) + masked(.ping, [1, 2]) + masked(.continuation, Array(text[3..<9]), fin: false)
            + masked(.pong, []) + masked(.continuation, Array(text[9...]))
        for step in [Int.max, 1] {
            XCTAssertEqual(decode(bytes, step: step).0, [.ping([1, 2]), .pong([]), .text(text)])
        }
    }

    func testInvalidUTF8IsRefusedAtTheFragmentThatBreaksIt() {
        let bytes = masked(.text, Array("ok".utf8), fin: false) + masked(.continuation, [0xED, 0xA0, 0x80], fin: false)
        let (_, error) = decode(bytes)
        XCTAssertEqual(error?.code, .invalidPayload)
        XCTAssertEqual(decode(masked(.text, [0xF0, 0x90])).1?.code, .invalidPayload, "ends mid code point")
        XCTAssertNil(decode(masked(.binary, [0xFF])).1, "binary is not checked")
    }

    func testProtocolViolations() {
        let cases: [([UInt8], WebSocketCloseCode)] = [
            (WebSocketFrameEncoder.frame(.text, payload: Array("hi".utf8)), .protocolError),  // unmasked from a client
            ([0xC1, 0x80, 0, 0, 0, 0], .protocolError),  // RSV1
            ([0x83, 0x80, 0, 0, 0, 0], .protocolError),  // opcode 3
            ([0x8B, 0x80, 0, 0, 0, 0], .protocolError),  // opcode 11
            (masked(.ping, [], fin: false), .protocolError),  // fragmented control
            (masked(.ping, [UInt8](repeating: 0, count: 126)), .protocolError),
            (masked(.continuation, [1]), .protocolError),  // nothing to continue
            (masked(.text, [0x61], fin: false) + masked(.text, [0x62]), .protocolError),
            (masked(.close, [0x03]), .protocolError),  // one-byte close payload
            (masked(.close, [0x03, 0xEC]), .protocolError),  // code 1004
            (masked(.close, [0x03, 0xED]), .protocolError),  // 1005
            (masked(.close, [0x13, 0x88]), .protocolError),  // 5000
            (masked(.close, [0x03, 0xE8, 0xFF]), .invalidPayload),
            ([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0], .protocolError),  // 64-bit length with the top bit
        ]
        for (bytes, code) in cases {
            XCTAssertEqual(decode(bytes).1?.code, code, "\(bytes.prefix(12))")
        }
        XCTAssertEqual(decode(WebSocketFrameEncoder.frame(.text, payload: [0x61], maskingKey: key), role: .client).1?.code, .protocolError,
                       "a masked frame from a server")
    }

    func testTheLimitIsCheckedFromTheHeaderBeforeThePayloadArrives() {
        // Only the 10-byte header of a 4 GiB frame: refused at once, nothing buffered.
        XCTAssertEqual(decode([0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0], limit: 1000).1?.code, .messageTooBig)
        XCTAssertEqual(decode(Array(masked(.binary, [UInt8](repeating: 1, count: 1001)).prefix(8)), limit: 1000).1?.code, .messageTooBig)
        let fragmented = masked(.binary, [UInt8](repeating: 1, count: 600), fin: false) + masked(.continuation, [UInt8](repeating: 1, count: 600))
        XCTAssertEqual(decode(fragmented, limit: 1000).1?.code, .messageTooBig, "fragments count together")
    }

    func testCloseFrames() {
        XCTAssertEqual(decode(masked(.close, [])).0, [.close(code: nil, reason: "")])
        XCTAssertEqual(decode(masked(.close, WebSocketFrameEncoder.closePayload(.normal, reason: "bye"))).0, [.close(code: 1000, reason: "bye")])
        XCTAssertEqual(decode(masked(.close, [0x0F, 0xA0])).0, [.close(code: 4000, reason: "")])
        let long = WebSocketFrameEncoder.closePayload(.normal, reason: String(repeating: "é", count: 100))
        XCTAssertLessThanOrEqual(long.count, 125)
        XCTAssertNotNil(String(validating: long[2...], as: UTF8.self), "cut on a character boundary")
    }

    func testTruncatedFramesWaitForMore() {
        let whole = masked(.text, Array("hello".utf8))
        for length in 0..<whole.count {
            let (messages, error) = decode(Array(whole.prefix(length)))
            XCTAssertNil(error)
            XCTAssertEqual(messages, [])
        }
    }
}
