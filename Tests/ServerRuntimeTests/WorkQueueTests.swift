import CLinux
import Foundation
import ServerRuntime
import Synchronization
import XCTest

final class WorkQueueTests: XCTestCase {
    func testRunsEveryJobAtALowerPriorityAndRefusesPastItsLimit() {
        let queue = WorkQueue(label: "test-work", limit: 4, threads: 2, niceness: 10)
        let gate = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var niceness: [Int32] = []
        }
        let seen = Seen()
        for _ in 0..<4 {
            XCTAssertTrue(queue.submit {
                gate.wait()
                let value = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(gettid()))
                seen.lock.lock(); seen.niceness.append(value); seen.lock.unlock()
                done.signal()
            })
        }
        XCTAssertFalse(queue.submit {}, "a fifth job waits beyond the limit of 4")
        for _ in 0..<4 { gate.signal() }
        for _ in 0..<4 { XCTAssertEqual(done.wait(timeout: .now() + 5), .success) }
        XCTAssertEqual(seen.niceness, [10, 10, 10, 10])
        // Finished jobs free their places.
        let again = DispatchSemaphore(value: 0)
        usleep(50_000)
        XCTAssertTrue(queue.submit { again.signal() })
        XCTAssertEqual(again.wait(timeout: .now() + 5), .success)
    }

    func testQuietThreadsWorkOnlyWhileTheProcessIsQuiet() {
        final class Flags: Sendable {
            let quiet = Atomic<Bool>(false)
            let running = Atomic<Int>(0)
        }
        let flags = Flags()
        let queue = WorkQueue(label: "test-quiet", limit: 8, threads: 1, quietThreads: 1, isQuiet: { flags.quiet.load(ordering: .relaxed) })
        let gate = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<2 {
            XCTAssertTrue(queue.submit {
                flags.running.add(1, ordering: .relaxed)
                gate.wait()
                flags.running.subtract(1, ordering: .relaxed)
                done.signal()
            })
        }
        usleep(150_000)
        XCTAssertEqual(flags.running.load(ordering: .relaxed), 1, "busy: the second job waits for the one thread")
        flags.quiet.store(true, ordering: .relaxed)
        let deadline = Date().addingTimeInterval(5)
        while flags.running.load(ordering: .relaxed) < 2 && Date() < deadline { usleep(5_000) }
        XCTAssertEqual(flags.running.load(ordering: .relaxed), 2, "quiet: the quiet thread takes it")
        gate.signal()
        gate.signal()
        for _ in 0..<2 { XCTAssertEqual(done.wait(timeout: .now() + 5), .success) }
    }
}
