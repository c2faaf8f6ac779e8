import CLinux
import XCTest
@testable import ServerRuntime

final class EventLoopGroupTests: XCTestCase {
    /// A descriptor registered on a loop that never closes when asked to: it keeps its loop
    /// running until it is forced to stop.
    private final class Stubborn: Selectable {
        let fd: Int32
        init(fd: Int32) { self.fd = fd }
        func handleEvents(_ events: UInt32) {}
        func tick(now: Int64) {}
        func beginShutdown() {}
    }

    func testLoopsWithNothingOpenStopWhenAsked() {
        let group = EventLoopGroup(count: 2)
        XCTAssertEqual(group.loops.map(\.index), [0, 1])
        group.start()
        let started = MonotonicClock.milliseconds()
        XCTAssertTrue(group.shutdown(timeoutMilliseconds: 5000) { false })
        XCTAssertLessThan(MonotonicClock.milliseconds() - started, 5000)
    }

    func testALoopThatDoesNotDrainIsStoppedAtTheTimeOutOrWhenInterrupted() {
        for interruptAt in [Int64?.none, 100] {
            let group = EventLoopGroup(count: 2)
            let fd = eventfd(0, Int32(EFD_CLOEXEC))
            defer { close(fd) }
            let stubborn = Stubborn(fd: fd)
            group.loops[1].register(stubborn, events: 0)
            group.start()
            let started = MonotonicClock.milliseconds()
            let drained = group.shutdown(timeoutMilliseconds: interruptAt == nil ? 300 : 60_000) {
                interruptAt.map { MonotonicClock.milliseconds() - started >= $0 } ?? false
            }
            XCTAssertFalse(drained)
            XCTAssertLessThan(MonotonicClock.milliseconds() - started, 10_000, "stopped by \(interruptAt == nil ? "the time-out" : "the interruption")")
            withExtendedLifetime(stubborn) {}
        }
    }
}
