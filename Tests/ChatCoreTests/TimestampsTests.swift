import ChatCore
import XCTest

final class TimestampsTests: XCTestCase {
    func testPostgresTextBecomesISOWithMillisecondsTruncated() {
        XCTAssertEqual(Timestamps.fromPostgres("2026-01-16 17:04:58.123987"), "2026-01-16T17:04:58.123Z")
        XCTAssertEqual(Timestamps.fromPostgres("2026-01-16 17:04:58.1"), "2026-01-16T17:04:58.100Z")
        XCTAssertEqual(Timestamps.fromPostgres("2026-01-16 17:04:58"), "2026-01-16T17:04:58.000Z")
        XCTAssertEqual(Timestamps.fromPostgres("2026-01-16 17:04:58.5+00"), "2026-01-16T17:04:58.500Z")
        XCTAssertEqual(Timestamps.fromPostgres("infinity"), "infinity")
    }

}
