import ChatCore
import ServerRuntime
import Synchronization
import XCTest

/// Token buckets and the per-user event limits, on a clock the test moves.
final class EventRateLimitsTests: XCTestCase {
    func testABucketGivesItsBurstThenRefillsAtItsRateAndSaysHowLongToWait() {
        var bucket = TokenBucket(burst: 3, perSecond: 2, now: 0)
        for _ in 0..<3 { XCTAssertNil(bucket.take(now: 0)) }
        XCTAssertEqual(bucket.take(now: 0), 500, "one token every 500 ms")
        XCTAssertEqual(bucket.take(now: 400), 100)
        XCTAssertNil(bucket.take(now: 500))
        XCTAssertEqual(bucket.wait(now: 500), 500)
        XCTAssertFalse(bucket.isFull(at: 1_000))
        XCTAssertTrue(bucket.isFull(at: 2_000))
        XCTAssertNil(bucket.take(now: 10_000))
        XCTAssertNil(bucket.take(now: 10_000))
        XCTAssertNil(bucket.take(now: 10_000))
        XCTAssertNotNil(bucket.take(now: 10_000), "never more than the burst, however long it rested")
    }

    func testSpendingGoesIntoDebtAndAClockGoingBackGivesNothing() {
        var bucket = TokenBucket(burst: 1, perSecond: 1, now: 1_000)
        bucket.spend(now: 1_000)
        bucket.spend(now: 1_000)
        XCTAssertEqual(bucket.wait(now: 1_000), 2_000, "one token of debt, then the one to take")
        XCTAssertEqual(bucket.take(now: 500), 2_000, "time running backwards refills nothing")
        XCTAssertNil(bucket.take(now: 3_000))
        var never = TokenBucket(burst: 0, perSecond: 0, now: 0)
        XCTAssertEqual(never.take(now: 1_000_000), Int64.max)
    }

    private final class FakeClock: Sendable {
        let now = Locked<Int64>(5_000_000)
        func advance(_ milliseconds: Int64) { now.withLock { $0 += milliseconds } }
        var value: Int64 { now.withLock { $0 } }
    }

    func testAUsersSocketsShareOneBucketPerKindAndUsersAreApart() {
        var settings = EventRateLimits.Settings()
        settings.messages = .init(burst: 4, perSecond: 1)
        settings.typing = .init(burst: 2, perSecond: 1)
        let clock = FakeClock()
        let limits = EventRateLimits(settings: settings, clock: { clock.value })
        let phone = limits.connect(userID: "ann")!, laptop = limits.connect(userID: "ann")!, bob = limits.connect(userID: "bob")!
        XCTAssertNil(phone.admit(.message, now: clock.value))
        XCTAssertNil(laptop.admit(.message, now: clock.value))
        XCTAssertNil(phone.admit(.message, now: clock.value))
        XCTAssertNil(laptop.admit(.message, now: clock.value))
        XCTAssertEqual(phone.admit(.message, now: clock.value), 1_000, "the fifth of the user's messages, whichever socket")
        XCTAssertNil(bob.admit(.message, now: clock.value), "another user has their own")
        XCTAssertNil(phone.admit(.typing, now: clock.value), "typing has its own bucket")
        XCTAssertNil(phone.admit(.receipt, now: clock.value))
        XCTAssertNil(phone.admit(.other, now: clock.value))
        clock.advance(1_000)
        XCTAssertNil(laptop.admit(.message, now: clock.value))
    }

    func testLeavingAndComingBackRefillsNothingAndFullBucketsOfGoneUsersAreForgotten() {
        var settings = EventRateLimits.Settings()
        settings.messages = .init(burst: 2, perSecond: 0.01)  // one every 100 s
        let clock = FakeClock()
        let limits = EventRateLimits(settings: settings, clock: { clock.value })
        let first = limits.connect(userID: "ann")!
        XCTAssertNil(first.admit(.message, now: clock.value))
        XCTAssertNil(first.admit(.message, now: clock.value))
        limits.release(userID: "ann")
        clock.advance(61_000)
        _ = limits.connect(userID: "bob")!  // a sweep runs
        let again = limits.connect(userID: "ann")!
        XCTAssertNotNil(again.admit(.message, now: clock.value), "a reconnect finds the bucket it left, not a full one")
        limits.release(userID: "ann")
        limits.release(userID: "bob")
        clock.advance(400_000)  // every bucket full again
        _ = limits.connect(userID: "carol")!
        XCTAssertEqual(limits.trackedUsers, 1, "only carol, who is connected")
    }

    func testEventsAreSortedIntoKindsAndABurstOfZeroIsNoLimit() {
        XCTAssertEqual(EventRateLimits.Kind(event: "send_message"), .message)
        XCTAssertEqual(EventRateLimits.Kind(event: "typing"), .typing)
        XCTAssertEqual(EventRateLimits.Kind(event: "mark_read"), .receipt)
        XCTAssertEqual(EventRateLimits.Kind(event: "sync"), .other)
        XCTAssertEqual(EventRateLimits.Kind(event: "anything"), .other)
        var settings = EventRateLimits.Settings()
        settings.messages = .init(burst: 0, perSecond: 1)
        let limits = EventRateLimits(settings: settings, clock: { 0 })
        let user = limits.connect(userID: "ann")!
        for _ in 0..<10_000 { XCTAssertNil(user.admit(.message, now: 0)) }
    }

    func testAUserHasAtMostSocketsPerUserConnectedAndAReleaseMakesRoom() {
        var settings = EventRateLimits.Settings()
        settings.socketsPerUser = 3
        let limits = EventRateLimits(settings: settings, clock: { 0 })
        for _ in 0..<3 { XCTAssertNotNil(limits.connect(userID: "ann")) }
        XCTAssertNil(limits.connect(userID: "ann"), "a fourth")
        XCTAssertNotNil(limits.connect(userID: "bob"), "others are counted apart")
        XCTAssertNotNil(limits.buckets(of: "ann"))
        limits.release(userID: "ann")
        XCTAssertNotNil(limits.connect(userID: "ann"))
        settings.socketsPerUser = 0
        let uncapped = EventRateLimits(settings: settings, clock: { 0 })
        for _ in 0..<1_000 { XCTAssertNotNil(uncapped.connect(userID: "ann")) }
    }
}
