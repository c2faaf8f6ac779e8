import DotEnv
import XCTest
@testable import ChatServer

final class DotEnvTests: XCTestCase {
    func testReadsTheLinesPeopleWrite() {
        let text = """
            # comment
            PORT=5001
            export JWT_SECRET="quoted # not a comment"
            DB_PASSWORD=Sukrit@123   # trailing comment
            SINGLE='lit\\eral $x'
            DOUBLE="a\\nb"
            EMPTY=
            SPACED = padded value\t
            MULTI="line one
            line two"
            not a line
            =novalue
            WINDOWS=crlf\r
            """
        let pairs = Dictionary(DotEnv.parse(text).map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        XCTAssertEqual(pairs["PORT"], "5001")
        XCTAssertEqual(pairs["JWT_SECRET"], "quoted # not a comment")
        XCTAssertEqual(pairs["DB_PASSWORD"], "Sukrit@123")
        XCTAssertEqual(pairs["SINGLE"], "lit\\eral $x")
        XCTAssertEqual(pairs["DOUBLE"], "a\nb")
        XCTAssertEqual(pairs["EMPTY"], "")
        XCTAssertEqual(pairs["SPACED"], "padded value")
        XCTAssertEqual(pairs["MULTI"], "line one\nline two")
        XCTAssertEqual(pairs["WINDOWS"], "crlf")
        XCTAssertEqual(pairs.count, 9)
    }

    /// Found by the fuzzer (Fuzz/corpus/FuzzDotEnv/crash-combining-mark): a quote or backslash
    /// followed by a combining mark is one Character with it, and was then not seen as one.
    func testQuotesAndEscapesBeforeACombiningMarkStillCount() {
        let text = "ESCAPED=\"a\\\"\u{0B63}b\"\nOPENING=\"\u{301}x\"\nCOMMENT=v #\u{301} no\nEQUALS=\u{301}y\n"
        let pairs = DotEnv.parse(text)
        XCTAssertEqual(pairs.map(\.key), ["ESCAPED", "OPENING", "COMMENT", "EQUALS"])
        XCTAssertEqual(pairs.map { Array($0.value.unicodeScalars) }, [
            Array("a\"\u{0B63}b".unicodeScalars), Array("\u{301}x".unicodeScalars), Array("v".unicodeScalars), Array("\u{301}y".unicodeScalars),
        ])
    }

    func testTheNodeOriginalsEnvFile() {
        let text = "PORT=5001\nDB_USER=postgres\nDB_PASSWORD=Sukrit@123\nDB_HOST=localhost\nDB_PORT=5432\nDB_NAME=chat_app\nJWT_SECRET=supersecretkey\n"
        let configuration = try? Configuration(Configuration.variables(environment: [:], dotEnvText: text))
        XCTAssertEqual(configuration?.port, 5001)
        XCTAssertEqual(configuration?.jwtSecret, "supersecretkey")
        XCTAssertEqual(configuration?.database.keywords.map(\.key), ["host", "port", "user", "password", "dbname"])
        XCTAssertEqual(configuration?.database.keywords.first(where: { $0.key == "password" })?.value, "Sukrit@123")
        XCTAssertEqual(configuration?.databaseDescription, "postgres://postgres@localhost:5432/chat_app")
    }
}
