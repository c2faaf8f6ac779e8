import XCTest
@testable import ChatServer

/// Where new recovery sessions start: unknown until the database or a delivery says, then only
/// forward.
final class StreamHeadTests: XCTestCase {
    func testUnknownUntilToldThenOnlyForward() {
        let head = StreamHead()
        XCTAssertNil(head.value)
        head.advance(to: 0)
        XCTAssertEqual(head.value, 0, "an empty database is a known place")
        head.advance(to: 42)
        head.advance(to: 7)
        XCTAssertEqual(head.value, 42)
    }

    func testAdvancesFromManyThreadsKeepTheHighest() {
        let head = StreamHead()
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for seq in stride(from: Int64(thread), to: 8_000, by: 8) { head.advance(to: seq) }
        }
        XCTAssertEqual(head.value, 7_999)
    }
}
