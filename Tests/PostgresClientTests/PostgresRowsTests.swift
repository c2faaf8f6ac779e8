import PostgresClient
import XCTest

/// Rows keep every value's bytes in one buffer and make strings on demand: what goes in comes
/// out the same, NULL apart from the empty string, and numbers parse from the bytes.
final class PostgresRowsTests: XCTestCase {
    private let rows = PostgresRows(columns: ["id", "note", "n"], rows: [
        ["a", nil, "42"],
        ["", "é😀 \u{0}", "-9223372036854775808"],
        ["c", "", "9223372036854775807"],
    ], affectedRows: 3)

    func testValuesComeBackAsTheyWentIn() {
        XCTAssertEqual(rows.count, 3)
        XCTAssertFalse(rows.isEmpty)
        XCTAssertEqual(rows.affectedRows, 3)
        XCTAssertEqual(rows.rows, [["a", nil, "42"], ["", "é😀 \u{0}", "-9223372036854775808"], ["c", "", "9223372036854775807"]])
        XCTAssertEqual(rows.value(1, "note"), "é😀 \u{0}")
        XCTAssertEqual(rows.value(1, 1), "é😀 \u{0}")
        XCTAssertNil(rows.value(0, "note"), "NULL")
        XCTAssertEqual(rows.value(2, "note"), "", "the empty string is not NULL")
        XCTAssertEqual(rows.value(1, "id"), "")
        XCTAssertNil(rows.value(0, "no such column"))
    }

    func testComparingAValueMakesNoStringAndTellsNullFromEmpty() {
        XCTAssertTrue(rows.value(0, 0, equals: "a"))
        XCTAssertFalse(rows.value(0, 0, equals: "ab"))
        XCTAssertFalse(rows.value(0, 0, equals: ""))
        XCTAssertTrue(rows.value(1, 0, equals: ""))
        XCTAssertFalse(rows.value(0, 1, equals: ""), "NULL is not the empty string")
        XCTAssertTrue(rows.value(1, 1, equals: "é😀 \u{0}"))
    }

    func testWholeNumbersParseFromTheBytesAndAnythingElseIsNil() {
        XCTAssertEqual(rows.int64(0, 2), 42)
        XCTAssertEqual(rows.int64(1, 2), .min)
        XCTAssertEqual(rows.int64(2, 2), .max)
        XCTAssertNil(rows.int64(0, 1), "NULL")
        XCTAssertNil(rows.int64(2, 1), "empty")
        let odd = PostgresRows(columns: ["n"], rows: [["-"], ["9223372036854775808"], ["-9223372036854775809"], ["12a"], ["+1"], [" 1"],
                                                       ["99999999999999999999"], ["0"], ["-0"], ["007"]], affectedRows: 0)
        XCTAssertEqual((0..<odd.count).map { odd.int64($0, 0) }, [nil, nil, nil, nil, nil, nil, nil, 0, 0, 7])
    }

    func testNoRows() {
        let none = PostgresRows(columns: ["a"], rows: [], affectedRows: 0)
        // `value(0, …)`: the first row's, if there is one (a user that is not there any more).
        XCTAssertNil(none.value(0, "a"))
        XCTAssertNil(none.value(0, 0))
        XCTAssertNil(none.int64(0, 0))
        XCTAssertFalse(none.value(0, 0, equals: ""))
        XCTAssertNil(rows.value(3, 0), "past the last row")
        XCTAssertNil(rows.value(-1, 0))
        XCTAssertNil(rows.value(0, 3), "past the last column")
        XCTAssertTrue(none.isEmpty)
        XCTAssertEqual(none.rows, [])
        XCTAssertEqual(PostgresRows(columns: [], rows: [], affectedRows: 7).affectedRows, 7)
    }
}
