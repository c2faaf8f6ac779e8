import Synchronization

/// The server's event loops, one thread each, started and stopped together.
public final class EventLoopGroup: Sendable {
    public let loops: [EventLoop]
    private let finished = Atomic<Int>(0)
    private let threads = Locked<[PlatformThread]>([])

    /// `count` loops, not yet running: register their listeners first, then `start()`.
    public init(count: Int) {
        loops = (0..<max(1, count)).map { EventLoop(index: $0) }
    }

    /// Runs each loop on a thread of its own.
    public func start() {
        let started = loops.map { loop in
            PlatformThread.start(name: "event-loop-\(loop.index)") { [self] in
                loop.run()
                finished.add(1, ordering: .relaxed)
            }
        }
        threads.withLock { $0 = started }
    }

    /// Asks every loop to let its connections finish (see `EventLoop.requestShutdown`), then
    /// waits until every loop has returned, for at most `timeoutMilliseconds` and for as long as
    /// `interrupted` says false; past either, the loops stop at once. Returns whether they all
    /// finished on their own.
    public func shutdown(timeoutMilliseconds: Int64, interrupted: () -> Bool) -> Bool {
        for loop in loops { loop.requestShutdown() }
        let allFinished = { self.finished.load(ordering: .relaxed) == self.loops.count }
        _ = MonotonicClock.wait(upTo: timeoutMilliseconds) { allFinished() || interrupted() }
        let drained = allFinished()
        if !drained {
            for loop in loops { loop.forceStop() }
        }
        for thread in threads.withLock({ $0 }) { thread.join() }
        return drained
    }
}
