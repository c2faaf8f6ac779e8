import CLinux
import Foundation
import ServerRuntime
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
}
