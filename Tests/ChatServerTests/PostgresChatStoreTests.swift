import XCTest
@testable import ChatServer

/// How the batch insert tells stored messages from left-out ones in what RETURNING gave back.
final class PostgresChatStoreReturnedRowsTests: XCTestCase {
    private typealias Store = PostgresChatStore
    private let ids = ["a", "b", "c", "d", "e"]

    func testRowsInInsertionOrder() {
        XCTAssertEqual(Store.returnedValues(ids: ids, rows: ids.map { [$0, "t-\($0)"] }), ["t-a", "t-b", "t-c", "t-d", "t-e"])
    }

    func testLeftOutRowsAreNilWhereverTheyFall() {
        XCTAssertEqual(Store.returnedValues(ids: ids, rows: [["b", "1"], ["d", "2"]]), [nil, "1", nil, "2", nil])
        XCTAssertEqual(Store.returnedValues(ids: ids, rows: [["a", "1"], ["b", "2"], ["e", "3"]]), ["1", "2", nil, nil, "3"])
        XCTAssertEqual(Store.returnedValues(ids: ids, rows: []), [nil, nil, nil, nil, nil])
    }

    func testRowsOutOfOrderAreFoundByID() {
        XCTAssertEqual(Store.returnedValues(ids: ids, rows: [["a", "1"], ["e", "5"], ["c", "3"], ["b", "2"]]), ["1", "2", "3", nil, "5"])
    }

    func testANullValueIsEmptyNotLeftOut() {
        XCTAssertEqual(Store.returnedValues(ids: ["a", "b"], rows: [["a", nil], ["b", "2"]]), ["", "2"])
        XCTAssertEqual(Store.returnedValues(ids: ["a", "b"], rows: [["b", nil]]), [nil, ""])
    }
}
