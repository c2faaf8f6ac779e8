import JSON
import Logging
import ServerLogging
import XCTest

final class LogLineHandlerTests: XCTestCase {
    private let time = "2026-11-28T19:50:00.123Z"

    private func text(_ message: String, _ metadata: Logger.Metadata = [:]) -> String {
        String(decoding: LogLineHandler.line(time: time, level: .info, label: "chat.http", message: message, metadata: metadata, format: .text),
               as: UTF8.self)
    }

    private func json(_ message: String, _ metadata: Logger.Metadata = [:], level: Logger.Level = .info) throws -> JSONValue {
        let line = LogLineHandler.line(time: time, level: level, label: "chat.http", message: message, metadata: metadata, format: .json)
        XCTAssertEqual(line.last, UInt8(ascii: "\n"))
        XCTAssertEqual(line.filter { $0 == UInt8(ascii: "\n") }.count, 1, "one line")
        return try JSONParser.parse(Array(line.dropLast()))
    }

    func testTextPutsTheLeadingFieldsFirstThenTheRestSorted() {
        let line = text("request", ["zeta": "1", "request_id": "abc", "status": .stringConvertible(200), "method": "GET", "alpha": "x",
                                    "path": "/api/sync", "duration_ms": .stringConvertible(1.25)])
        XCTAssertEqual(line, "\(time) info chat.http: request method=GET path=/api/sync status=200 duration_ms=1.25 request_id=abc alpha=x zeta=1\n")
    }

    func testTextQuotesValuesWithSpacesQuotesOrEqualsAndEscapesControlCharacters() {
        let line = text("line one\nline two", ["reason": "transport close", "q": "a\"b\\c", "eq": "a=b", "empty": "", "bell": "\u{07}x"])
        XCTAssertEqual(line, #"2026-11-28T19:50:00.123Z info chat.http: line one\nline two reason="transport close" bell="\u0007x" empty="" eq="a=b" q="a\"b\\c""# + "\n")
        XCTAssertEqual(line.filter { $0 == "\n" }.count, 1, "a value can never start a line of its own")
    }

    func testUnicodeLineBreaksAreEscapedInBothFormats() throws {
        let path = "/a\u{2028}forged line\u{85}b\u{2029}c é"
        let line = text("request", ["path": .string(path)])
        XCTAssertEqual(line, "\(time) info chat.http: request path=\"/a\\u2028forged line\\u0085b\\u2029c é\"\n")
        XCTAssertEqual(line.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).count, 2, "one line and the empty rest")
        let object = try json("request", ["path": .string(path)])
        XCTAssertEqual(object["path"], .string(path), "the same text, once parsed")
    }

    func testJSONHasTheRecordsFieldsWithNumbersAsNumbers() throws {
        let object = try json("request", ["method": "GET", "status": .stringConvertible(404), "duration_ms": .stringConvertible(0.5),
                                          "resuming": .stringConvertible(true), "user": "0b6f…", "list": ["a", "b"]], level: .warning)
        XCTAssertEqual(object["time"], .string(time))
        XCTAssertEqual(object["level"], .string("warning"))
        XCTAssertEqual(object["logger"], .string("chat.http"))
        XCTAssertEqual(object["message"], .string("request"))
        XCTAssertEqual(object["status"], .number(404))
        XCTAssertEqual(object["duration_ms"], .number(0.5))
        XCTAssertEqual(object["resuming"], .bool(true))
        XCTAssertEqual(object["user"], .string("0b6f…"))
        XCTAssertEqual(object["list"], .array([.string("a"), .string("b")]))
    }

    func testJSONEscapesControlCharactersAndKeepsItsOwnKeys() throws {
        let object = try json("two\nlines \u{1b}[31m", ["message": "an impostor", "level": "critical", "path": "/\u{00}"])
        XCTAssertEqual(object["message"], .string("two\nlines \u{1b}[31m"))
        XCTAssertEqual(object["level"], .string("info"))
        XCTAssertEqual(object["path"], .string("/\u{00}"))
    }

    func testTheLevelComesFromTheSettingUnlessALoggerSetsItsOwn() {
        var handler = LogLineHandler(label: "test")
        LogLineHandler.configure(level: .warning, format: .text)
        XCTAssertEqual(handler.logLevel, .warning)
        LogLineHandler.configure(level: .debug, format: .text)
        XCTAssertEqual(handler.logLevel, .debug)
        handler.logLevel = .error
        LogLineHandler.configure(level: .trace, format: .text)
        XCTAssertEqual(handler.logLevel, .error)
        LogLineHandler.configure(level: .info, format: .text)
    }
}
