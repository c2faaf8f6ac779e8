import JSON
import XCTest

final class JSONTests: XCTestCase {
    func testParsesEveryKindOfValue() throws {
        let value = try JSONParser.parse(#" {"a": [1, -2.5e3, true, false, null], "b": {"c": "d"}, "e": 0} "#)
        XCTAssertEqual(value, ["a": [1, -2500, true, false, nil], "b": ["c": "d"], "e": 0])
    }

    func testDecodesEscapesAndSurrogatePairs() throws {
        let value = try JSONParser.parse(#""\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00x""#)
        XCTAssertEqual(value, .string("\"\\/\u{8}\u{c}\n\r\té😀x"))
    }

    func testKeepsMemberOrderAndLastDuplicateWins() throws {
        let value = try JSONParser.parse(#"{"z":1,"a":2,"z":3}"#)
        XCTAssertEqual(value.objectValue?.members.map(\.key), ["a", "z"])
        XCTAssertEqual(value["z"], 3)
    }

    func testRefusesMalformedInput() {
        let bad = ["", " ", "{", "[1,]", "{\"a\":1,}", "{'a':1}", "01", "1.", ".5", "-", "+1", "NaN", "Infinity", "tru", "nul",
                   "\"abc", "\"a\u{01}b\"", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\ud800\\u0041\"", "\"\\udc00\"", "{\"a\" 1}",
                   "[1 2]", "1 2", "{} x", "/* c */ 1", "1e400", "[", "\u{feff}{}"]
        for text in bad {
            XCTAssertThrowsError(try JSONParser.parse(text), "accepted \(text.debugDescription)")
        }
    }

    func testRefusesInvalidUTF8() {
        XCTAssertThrowsError(try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]))
        XCTAssertThrowsError(try JSONParser.parse([0x22, 0xED, 0xA0, 0x80, 0x22]), "encoded surrogate")
        XCTAssertThrowsError(try JSONParser.parse([0x22, 0x5C, 0x6E, 0xFF, 0x22]), "after an escape")
    }

    func testDeepNestingIsRefusedNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        XCTAssertThrowsError(try JSONParser.parse(deep)) { XCTAssertEqual(($0 as? JSONError)?.reason, "JSON nested too deeply") }
        let allowed = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        XCTAssertNoThrow(try JSONParser.parse(allowed))
    }

    func testTruncatedDocumentsAreRefusedAtEveryLength() {
        let whole = Array(#"{"username":"ü","n":[1,2.5,{"x":null}],"t":true}"#.utf8)
        XCTAssertNoThrow(try JSONParser.parse(whole))
        for length in 0..<whole.count {
            XCTAssertThrowsError(try JSONParser.parse(whole.prefix(length)), "prefix \(length)")
        }
    }

    func testWriterEscapesLikeJSONStringify() {
        XCTAssertEqual(JSONWriter.string(.string("a\"b\\c\n\u{1}\u{7f}é😀")), #""a\"b\\c\n\u0001"# + "\u{7f}é😀\"")
        XCTAssertEqual(JSONWriter.string(["n": 3, "f": 2.5, "big": 1e21, "neg": -0.0, "inf": .number(.infinity)]),
                       #"{"n":3,"f":2.5,"big":1e+21,"neg":0,"inf":null}"#)
    }

    func testRoundTrip() throws {
        let value: JSONValue = ["s": "line\nbreak \u{0} nul", "a": [1, "x", ["y": false]], "u": "日本語"]
        XCTAssertEqual(try JSONParser.parse(JSONWriter.bytes(value)), value)
    }
}
