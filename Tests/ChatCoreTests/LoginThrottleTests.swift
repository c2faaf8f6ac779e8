import ChatCore
import ServerRuntime
import Synchronization
import XCTest

/// The throttle's arithmetic on a clock the test moves.
final class LoginThrottleTests: XCTestCase {
    private final class FakeClock: Sendable {
        let now = Locked<Int64>(1_000_000)
        func advance(seconds: Double) { now.withLock { $0 += Int64(seconds * 1000) } }
    }

    private func throttle(_ clock: FakeClock) -> LoginThrottle {
        LoginThrottle(clock: { clock.now.withLock { $0 } })
    }

    func testDelaysDoubleAfterFiveFailuresUpToTheCapAndASuccessResets() {
        let clock = FakeClock()
        let throttle = throttle(clock)
        for _ in 0..<5 {
            XCTAssertNil(throttle.checkLogin(email: "Ann@Example.com ", address: "1.2.3.4"))
            throttle.loginFailed(email: "ann@example.com", address: "1.2.3.4")
        }
        XCTAssertEqual(throttle.checkLogin(email: "ANN@example.com", address: "5.6.7.8"), .init(retryAfterSeconds: 1), "per account, any case, any address")
        XCTAssertNil(throttle.checkLogin(email: "bob@example.com", address: "5.6.7.8"))
        var expected = 1
        for _ in 0..<12 {
            clock.advance(seconds: Double(expected))
            XCTAssertNil(throttle.checkLogin(email: "ann@example.com", address: "5.6.7.8"))
            throttle.loginFailed(email: "ann@example.com", address: "5.6.7.8")
            expected = min(expected * 2, 900)
            XCTAssertEqual(throttle.checkLogin(email: "ann@example.com", address: "9.9.9.9")?.retryAfterSeconds, expected)
        }
        XCTAssertEqual(expected, 900, "capped at 15 minutes")
        throttle.loginSucceeded(email: "ann@example.com")
        XCTAssertNil(throttle.checkLogin(email: "ann@example.com", address: "9.9.9.9"))
    }

    func testAnAddressSpendsItsBurstOfFailuresThenTenAMinute() {
        let clock = FakeClock()
        let throttle = throttle(clock)
        for n in 0..<30 {
            XCTAssertNil(throttle.checkLogin(email: "guess\(n)@x.example", address: "6.6.6.6"))
            throttle.loginFailed(email: "guess\(n)@x.example", address: "6.6.6.6")
        }
        XCTAssertEqual(throttle.checkLogin(email: "anyone@x.example", address: "6.6.6.6"), .init(retryAfterSeconds: 6))
        XCTAssertNil(throttle.checkLogin(email: "anyone@x.example", address: "7.7.7.7"), "other addresses are not touched")
        clock.advance(seconds: 6)
        XCTAssertNil(throttle.checkLogin(email: "anyone@x.example", address: "6.6.6.6"))
    }

    func testRegistrationsPerAddressAndHour() {
        let clock = FakeClock()
        let throttle = throttle(clock)
        for _ in 0..<20 { XCTAssertNil(throttle.admitRegistration(address: "1.1.1.1")) }
        XCTAssertEqual(throttle.admitRegistration(address: "1.1.1.1"), .init(retryAfterSeconds: 180))
        XCTAssertNil(throttle.admitRegistration(address: "2.2.2.2"))
        clock.advance(seconds: 180)
        XCTAssertNil(throttle.admitRegistration(address: "1.1.1.1"))
        XCTAssertNotNil(throttle.admitRegistration(address: "1.1.1.1"))
    }
}
