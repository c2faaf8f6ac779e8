import Foundation
import ServerRuntime
import XCTest

final class WallClockTests: XCTestCase {
    func testNowIsISO8601UTCToTheMillisecondAndNow() throws {
        let before = Date()
        let text = WallClock.iso8601()
        let after = Date()
        XCTAssertNotNil(text.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression), text)
        let parser = ISO8601DateFormatter()
        parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let parsed = try XCTUnwrap(parser.date(from: text), text)
        // Truncated to the millisecond: at most 1 ms before the call began.
        XCTAssertGreaterThanOrEqual(parsed.timeIntervalSince(before), -0.001)
        XCTAssertLessThanOrEqual(parsed.timeIntervalSince(after), 0)
    }
}
