import WebSocket
import XCTest

final class UTF8ValidatorTests: XCTestCase {
    func testAgreesWithTheStandardLibraryOnTrickyInputs() {
        let cases: [[UInt8]] = [
            Array("héllo wörld €𝄞".utf8), [0x7F], [0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xEF, 0xBF, 0xBF],
            [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF],
            [0xC0, 0xAF], [0xC1, 0xBF], [0xE0, 0x80, 0xAF], [0xF0, 0x80, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],
            [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFE], [0xFF], [0x80], [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64],
        ]
        for bytes in cases {
            var validator = UTF8Validator()
            let valid = validator.feed(bytes) && validator.isComplete
            XCTAssertEqual(valid, String(validating: bytes, as: UTF8.self) != nil, "\(bytes)")
        }
    }

    /// The word-at-a-time ASCII skip must agree with the byte DFA wherever a multi-byte sequence
    /// or a bad byte sits relative to the 8-byte steps, whole and fed in pieces.
    func testTheASCIIFastPathAgreesAtEveryOffset() {
        let inserts: [[UInt8]] = [[0xC3, 0xA9], [0xE2, 0x82, 0xAC], [0xF0, 0x9D, 0x84, 0x9E], [0xFF], [0xC3], [0xED, 0xA0, 0x80], [0x80]]
        for insert in inserts {
            for offset in 0...17 {
                for tail in [0, 1, 9] {
                    let bytes = Array(repeating: UInt8(ascii: "a"), count: offset) + insert + Array(repeating: UInt8(ascii: "z"), count: tail)
                    let expected = String(validating: bytes, as: UTF8.self) != nil
                    var whole = UTF8Validator()
                    XCTAssertEqual(whole.feed(bytes) && whole.isComplete, expected, "\(bytes)")
                    var pieces = UTF8Validator()
                    var ok = true
                    for start in stride(from: 0, to: bytes.count, by: 5) where ok {
                        ok = pieces.feed(Array(bytes[start..<min(bytes.count, start + 5)]))
                    }
                    XCTAssertEqual(ok && pieces.isComplete, expected, "in pieces: \(bytes)")
                }
            }
        }
    }

    func testFailsFastAndKnowsIncompleteFromInvalid() {
        var validator = UTF8Validator()
        XCTAssertTrue(validator.feed([0xF0, 0x90]))
        XCTAssertFalse(validator.isComplete, "half a code point")
        XCTAssertTrue(validator.feed([0x80, 0x80]))
        XCTAssertTrue(validator.isComplete)
        XCTAssertFalse(validator.feed([0x41, 0xC0]), "0xC0 can start nothing")
    }
}
