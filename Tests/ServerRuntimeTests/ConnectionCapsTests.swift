import ServerRuntime
import Synchronization
import XCTest

final class ConnectionCapsTests: XCTestCase {
    private final class FakeClock: Sendable {
        let now = Locked<Int64>(1_000_000)
        func advance(_ milliseconds: Int64) { now.withLock { $0 += milliseconds } }
        var value: Int64 { now.withLock { $0 } }
    }

    func testOpenConnectionsPerAddressAreCappedAndAReleaseMakesRoom() {
        var settings = ConnectionCaps.Settings()
        settings.openPerAddress = 2
        let caps = ConnectionCaps(settings: settings, clock: { 0 })
        for _ in 0..<2 {
            XCTAssertNil(caps.admit("10.0.0.1"))
            caps.opened("10.0.0.1")
        }
        XCTAssertEqual(caps.admit("10.0.0.1"), .init(message: "too many connections from this address (2 open); close one first", retryAfterSeconds: 5))
        XCTAssertNil(caps.admit("10.0.0.2"), "another address is counted apart")
        caps.release("10.0.0.1")
        XCTAssertEqual(caps.openConnections(from: "10.0.0.1"), 1)
        XCTAssertNil(caps.admit("10.0.0.1"))
    }

    func testNewConnectionsPerAddressSpendABurstThenTheRate() {
        var settings = ConnectionCaps.Settings()
        settings.newBurst = 5
        settings.newPerSecond = 2
        let clock = FakeClock()
        let caps = ConnectionCaps(settings: settings, clock: { clock.value })
        for _ in 0..<5 { XCTAssertNil(caps.admit("::1")) }
        XCTAssertEqual(caps.admit("::1"), .init(message: "too many new connections from this address (2 a second); try again shortly", retryAfterSeconds: 1))
        XCTAssertEqual(caps.openConnections(from: "::1"), 0, "admitted but never opened counts nothing")
        clock.advance(500)
        XCTAssertNil(caps.admit("::1"))
        XCTAssertNotNil(caps.admit("::1"))
    }

    func testAddressesWithNothingOpenAndAFullBucketAreForgotten() {
        let clock = FakeClock()
        let caps = ConnectionCaps(clock: { clock.value })
        XCTAssertNil(caps.admit("10.0.0.1"))
        caps.opened("10.0.0.1")
        caps.release("10.0.0.1")
        caps.release("10.0.0.1")  // one release too many does not go below zero
        XCTAssertEqual(caps.openConnections(from: "10.0.0.1"), 0)
        clock.advance(120_000)
        XCTAssertNil(caps.admit("10.0.0.9"))  // sweeps
        XCTAssertEqual(caps.openConnections(from: "10.0.0.1"), 0)
    }
}
