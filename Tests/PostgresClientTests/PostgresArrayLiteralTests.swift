import PostgresClient
import XCTest

final class PostgresArrayLiteralTests: XCTestCase {
    func testArrayLiteralsQuoteAndEscapeEveryElement() {
        XCTAssertEqual(PostgresArrayLiteral.text([]), "{}")
        XCTAssertEqual(PostgresArrayLiteral.text(["a", "b c", "", "NULL"]), #"{"a","b c","","NULL"}"#)
        XCTAssertEqual(PostgresArrayLiteral.text([#"say "hi""#, #"back\slash"#, "{,}", "é😀", "\"", #"\"#, #"a\"b"#]),
                       #"{"say \"hi\"","back\\slash","{,}","é😀","\"","\\","a\\\"b"}"#)
    }
}
