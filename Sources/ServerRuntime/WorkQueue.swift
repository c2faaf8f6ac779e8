import CLinux
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs CPU-heavy work (bcrypt) off the event loops, on `threads` threads of its own, with a
/// bound on how much may wait: past it, `submit` refuses and the caller answers "try again"
/// instead of queueing without end. The threads run at a lower priority (nice 10) so the
/// event loops preempt them. That alone does not protect chat latency when they fill every
/// core, whatever their priority; leaving a core free does, hence the server's default of
/// cores − 1 threads (README, Performance, "Logins"). `quietThreads` more take work only
/// while `isQuiet()` says the rest of the process has nothing to do: the work then has every
/// core while nothing else needs one, and gives the extra ones back as soon as something does.
public final class WorkQueue: Sendable {
    private final class Shared: Sendable {
        let jobs = Locked<(queue: [@Sendable () -> Void], head: Int)>(([], 0))
        let available = DispatchSemaphore(value: 0)
        let pending = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)

        /// The next job, or nil when the thread is to stop. Every signal stands for one job or,
        /// once the queue is gone, for one thread to stop: a wake-up that finds no job is a stop.
        func take() -> (@Sendable () -> Void)? {
            available.wait()
            return pop()
        }

        /// As `take`, for a thread that works only while `isQuiet()`: a job it may not run yet
        /// stays queued (its signal given back for another thread), and it looks again a
        /// little later.
        func takeWhenQuiet(_ isQuiet: () -> Bool) -> (@Sendable () -> Void)? {
            while true {
                available.wait()
                if stopping.load(ordering: .relaxed) { return pop() }
                if isQuiet() { return pop() }
                available.signal()
                usleep(20_000)
            }
        }

        private func pop() -> (@Sendable () -> Void)? {
            jobs.withLock { state in
                guard state.head < state.queue.count else { return nil }
                let job = state.queue[state.head]
                state.head += 1
                if state.head == state.queue.count { state.queue.removeAll(keepingCapacity: true); state.head = 0 }
                return job
            }
        }
    }

    private let shared = Shared()
    private let threadCount: Int
    public let limit: Int

    public init(label: String, limit: Int, threads: Int, niceness: Int32 = 10, quietThreads: Int = 0,
                isQuiet: @escaping @Sendable () -> Bool = { false }) {
        self.limit = limit
        threadCount = max(1, threads) + max(0, quietThreads)
        for index in 0..<threadCount {
            let shared = self.shared
            let name = "\(label)-\(index)"
            let onlyWhenQuiet = index >= max(1, threads)
            PlatformThread.start(name: name) {
                // On Linux a thread's nice value is its own (setpriority on its thread id).
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(gettid()), niceness)
                while let job = onlyWhenQuiet ? shared.takeWhenQuiet(isQuiet) : shared.take() {
                    job()
                    shared.pending.subtract(1, ordering: .relaxed)
                }
            }.detach()
        }
    }

    deinit {
        shared.stopping.store(true, ordering: .relaxed)
        for _ in 0..<threadCount { shared.available.signal() }
    }

    /// Jobs waiting or running now.
    public var pendingCount: Int { shared.pending.load(ordering: .relaxed) }

    /// False when `limit` jobs are already waiting or running; then `work` is not run.
    @discardableResult
    public func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        let before = shared.pending.add(1, ordering: .relaxed).oldValue
        guard before < limit else {
            shared.pending.subtract(1, ordering: .relaxed)
            return false
        }
        shared.jobs.withLock { $0.queue.append(work) }
        shared.available.signal()
        return true
    }
}
