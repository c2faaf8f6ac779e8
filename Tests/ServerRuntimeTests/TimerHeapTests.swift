import XCTest
@testable import ServerRuntime

final class TimerHeapTests: XCTestCase {
    private func timer(_ deadline: Int64, _ fired: @escaping (Int64) -> Void = { _ in }) -> LoopTimer {
        LoopTimer(deadline: deadline) { fired(deadline) }
    }

    /// Everything due at `now`, in the order the heap gives it.
    private func popAll(_ heap: inout TimerHeap, now: Int64) -> [Int64] {
        var deadlines: [Int64] = []
        while let due = heap.popDue(now: now) { deadlines.append(due.deadline) }
        return deadlines
    }

    func testTimersComeOutInDeadlineOrderWhateverTheInsertionOrder() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            var heap = TimerHeap()
            let deadlines = (0..<200).map { _ in Int64.random(in: 0..<1000, using: &generator) }
            for deadline in deadlines { heap.insert(timer(deadline)) }
            XCTAssertEqual(heap.nextDeadline(), deadlines.min())
            XCTAssertEqual(popAll(&heap, now: 1000), deadlines.sorted())
            XCTAssertNil(heap.nextDeadline())
        }
    }

    func testOnlyTimersDueByNowComeOut() {
        var heap = TimerHeap()
        for deadline: Int64 in [30, 10, 20, 40] { heap.insert(timer(deadline)) }
        XCTAssertNil(heap.popDue(now: 9))
        XCTAssertEqual(popAll(&heap, now: 20), [10, 20], "a deadline equal to now is due")
        XCTAssertEqual(heap.nextDeadline(), 30)
        XCTAssertEqual(popAll(&heap, now: 100), [30, 40])
    }

    func testCancelledTimersAreDroppedAndNeverFire() {
        var heap = TimerHeap()
        var fired: [Int64] = []
        let timers = (1...6).map { deadline in timer(Int64(deadline)) { fired.append($0) } }
        for timer in timers.reversed() { heap.insert(timer) }
        timers[0].cancel()
        timers[3].cancel()
        XCTAssertTrue(timers[0].isCancelled)
        XCTAssertEqual(heap.nextDeadline(), 2, "a cancelled first timer does not decide the wait")
        while let due = heap.popDue(now: 10) { due.fire() }
        XCTAssertEqual(fired, [2, 3, 5, 6])
        XCTAssertEqual(heap.count, 0)
    }

    func testATimerFiresAtMostOnce() {
        var count = 0
        let once = LoopTimer(deadline: 0) { count += 1 }
        once.fire()
        once.fire()
        XCTAssertEqual(count, 1)
        XCTAssertTrue(once.isCancelled, "a fired timer counts as spent")
    }
}
