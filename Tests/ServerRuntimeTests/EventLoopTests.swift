import ServerRuntime
import Synchronization
import XCTest
@testable import ServerRuntime

/// An event loop running on its own thread, driven from the test thread.
final class EventLoopTests: XCTestCase {
    private var loop: EventLoop!
    private var thread: PlatformThread!

    override func setUp() {
        loop = EventLoop(index: 0)
        let loop = self.loop!
        thread = PlatformThread.start(name: "test-loop") { loop.run() }
    }

    override func tearDown() {
        loop.requestShutdown()
        thread.join()
    }

    func testTasksFromOtherThreadsRunOnTheLoopInOrder() {
        let seen = Locked<[Int]>([])
        let done = expectation(description: "all tasks ran")
        let loop = self.loop!
        for index in 0..<100 {
            loop.execute {
                XCTAssertTrue(loop.isOnLoop)
                seen.withLock { $0.append(index) }
                if index == 99 { done.fulfill() }
            }
        }
        XCTAssertFalse(loop.isOnLoop)
        wait(for: [done], timeout: 5)
        XCTAssertEqual(seen.withLock { $0 }, Array(0..<100))
    }

    func testScheduledTasksRunAfterTheirDelayInDeadlineOrderAndCancelledOnesNever() {
        let fired = Locked<[String]>([])
        let done = expectation(description: "the last timer fired")
        let loop = self.loop!
        let started = MonotonicClock.milliseconds()
        let elapsed = Locked<Int64>(0)
        loop.execute {
            loop.schedule(after: 60) {
                fired.withLock { $0.append("60 ms") }
                elapsed.withLock { $0 = MonotonicClock.milliseconds() - started }
                done.fulfill()
            }
            loop.schedule(after: 20) { fired.withLock { $0.append("20 ms") } }
            let cancelled = loop.schedule(after: 40) { fired.withLock { $0.append("cancelled") } }
            loop.schedule(after: 10) { cancelled.cancel() }
        }
        wait(for: [done], timeout: 5)
        XCTAssertEqual(fired.withLock { $0 }, ["20 ms", "60 ms"])
        XCTAssertGreaterThanOrEqual(elapsed.withLock { $0 }, 60)
    }
}
