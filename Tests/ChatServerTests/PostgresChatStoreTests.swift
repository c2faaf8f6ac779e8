import ChatCore
import PostgresClient
import XCTest
@testable import ChatServer

/// How the batch insert tells stored messages from left-out ones in what RETURNING gave back.
final class PostgresChatStoreReturnedRowsTests: XCTestCase {
    private typealias Store = PostgresChatStore
    private let ids = ["a", "b", "c", "d", "e"]
    private let time = "2026-01-16 17:04:58.123"
    private let wireTime = "2026-01-16T17:04:58.123Z"

    private func row(_ id: String, _ seq: Int) -> [String?] { [id, time, String(seq)] }
    private func rows(_ rows: [[String?]]) -> PostgresRows { PostgresRows(columns: ["id", "created_at", "seq"], rows: rows, affectedRows: rows.count) }
    private func stored(_ seq: Int64) -> InsertedMessage { .stored(seq: seq, createdAt: wireTime) }

    func testRowsInInsertionOrder() {
        XCTAssertEqual(Store.insertedMessages(ids: ids, rows: rows(ids.enumerated().map { row($1, $0 + 10) })),
                       [stored(10), stored(11), stored(12), stored(13), stored(14)])
    }

    func testLeftOutRowsAreMissingWhereverTheyFall() {
        XCTAssertEqual(Store.insertedMessages(ids: ids, rows: rows([row("b", 1), row("d", 2)])),
                       [.unknownReceiver, stored(1), .unknownReceiver, stored(2), .unknownReceiver])
        XCTAssertEqual(Store.insertedMessages(ids: ids, rows: rows([row("a", 1), row("b", 2), row("e", 3)])),
                       [stored(1), stored(2), .unknownReceiver, .unknownReceiver, stored(3)])
        XCTAssertEqual(Store.insertedMessages(ids: ids, rows: rows([])), Array(repeating: .unknownReceiver, count: 5))
    }

    func testRowsOutOfOrderAreFoundByID() {
        XCTAssertEqual(Store.insertedMessages(ids: ids, rows: rows([row("a", 1), row("e", 5), row("c", 3), row("b", 2)])),
                       [stored(1), stored(2), stored(3), .unknownReceiver, stored(5)])
    }

    func testTheTimeOfEachRowIsConverted() {
        XCTAssertEqual(Store.insertedMessages(ids: ["a", "b"], rows: rows([["a", "2026-01-16 17:04:58.1", "1"], ["b", time, "2"]])),
                       [.stored(seq: 1, createdAt: "2026-01-16T17:04:58.100Z"), stored(2)])
    }
}
