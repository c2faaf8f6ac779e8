import CLinux
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Something an event loop watches: a listening socket or a connection.
public protocol Selectable: AnyObject {
    var fd: Int32 { get }
    /// Called on the loop with the epoll event bits.
    func handleEvents(_ events: UInt32)
    /// Called on the loop about once a second, for time-outs.
    func tick(now: Int64)
    /// The server is stopping: finish what is in flight, then close.
    func beginShutdown()
}

/// A connection that writes what it queued during this turn of the loop in one go, at its end.
public protocol DeferredFlushing: AnyObject {
    func flushDeferred()
}

/// One thread, one epoll: the ae.c idea. Everything registered here is touched only on this
/// thread; other threads hand it work through `execute`, which wakes it with an eventfd.
public final class EventLoop: @unchecked Sendable {
    public let index: Int
    private let epollFD: Int32
    private let wakeFD: Int32
    private let queue = Locked<[@Sendable () -> Void]>([])
    private let stopRequested = Atomic<Bool>(false)
    private var selectables: [Selectable?] = []
    private var registeredCount = 0
    private var thread = pthread_t()
    private var lastTick: Int64 = 0
    private var shuttingDown = false
    /// Milliseconds on the monotonic clock, read once per wake-up.
    public private(set) var now: Int64 = MonotonicClock.milliseconds()
    private var timers = TimerHeap()
    /// Scratch space every connection of this loop reads into before keeping what it needs.
    public let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    /// Connections with output queued this turn: one write each after the turn's events and
    /// tasks, however many frames they queued (a batch of acks to one socket is one write).
    private var deferredFlushes: [DeferredFlushing] = []

    public init(index: Int) {
        self.index = index
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(epollFD >= 0, "epoll_create1 failed")
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        precondition(wakeFD >= 0, "eventfd failed")
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = wakeFD
        epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &event)
    }

    deinit {
        readBuffer.deallocate()
        close(epollFD)
        close(wakeFD)
    }

    public var isOnLoop: Bool { pthread_equal(pthread_self(), thread) != 0 }

    /// Runs `task` on this loop's thread, soon. Safe from any thread.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        let wasEmpty = queue.withLock { queue in
            queue.append(task)
            return queue.count == 1
        }
        if wasEmpty { wake() }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Asks the loop to return from `run()` once every registered connection has closed.
    public func requestShutdown() {
        execute { [self] in
            shuttingDown = true
            for selectable in selectables.compactMap({ $0 }) { selectable.beginShutdown() }
        }
    }

    /// Makes `run()` return at once, whatever is still open.
    public func forceStop() {
        stopRequested.store(true, ordering: .relaxed)
        wake()
    }

    public func register(_ selectable: Selectable, events: UInt32) {
        let fd = Int(selectable.fd)
        if fd >= selectables.count { selectables += Array(repeating: nil, count: fd - selectables.count + 1) }
        selectables[fd] = selectable
        registeredCount += 1
        var event = epoll_event()
        event.events = events
        event.data.fd = selectable.fd
        epoll_ctl(epollFD, EPOLL_CTL_ADD, selectable.fd, &event)
    }

    public func modify(_ selectable: Selectable, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.fd = selectable.fd
        epoll_ctl(epollFD, EPOLL_CTL_MOD, selectable.fd, &event)
    }

    /// Forgets and closes the descriptor.
    public func deregisterAndClose(_ selectable: Selectable) {
        deregister(selectable)
        close(selectable.fd)
    }

    /// Runs `task` on this loop after `milliseconds`, unless the returned timer is cancelled first.
    /// Call on the loop.
    @discardableResult
    public func schedule(after milliseconds: Int64, _ task: @escaping () -> Void) -> LoopTimer {
        let timer = LoopTimer(deadline: MonotonicClock.milliseconds() + milliseconds, task: task)
        timers.insert(timer)
        return timer
    }

    /// Hands a descriptor to another owner without closing it (a WebSocket upgrade).
    public func deregister(_ selectable: Selectable) {
        let fd = selectable.fd
        epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
        if Int(fd) < selectables.count, selectables[Int(fd)] === selectable {
            selectables[Int(fd)] = nil
            registeredCount -= 1
        }
    }

    public func run() {
        thread = pthread_self()
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while !stopRequested.load(ordering: .relaxed) {
            let wait = timers.nextDeadline().map { max(0, min(1000, $0 - MonotonicClock.milliseconds())) } ?? 1000
            let count = epoll_wait(epollFD, &events, Int32(events.count), Int32(wait))
            now = MonotonicClock.milliseconds()
            if count > 0 {
                for i in 0..<Int(count) {
                    let fd = events[i].data.fd
                    if fd == wakeFD {
                        var value: UInt64 = 0
                        _ = read(wakeFD, &value, 8)
                        continue
                    }
                    guard Int(fd) < selectables.count, let selectable = selectables[Int(fd)] else { continue }
                    selectable.handleEvents(events[i].events)
                }
            }
            runQueuedTasks()
            while let timer = timers.popDue(now: now) { timer.fire() }
            flushDeferred()
            if now - lastTick >= 1000 {
                lastTick = now
                for selectable in selectables.compactMap({ $0 }) { selectable.tick(now: now) }
            }
            if shuttingDown && registeredCount == 0 { break }
        }
    }

    /// Asks for `connection.flushDeferred()` at the end of this turn; call once per turn, on the loop.
    public func flushAtEndOfTurn(_ connection: DeferredFlushing) {
        deferredFlushes.append(connection)
    }

    private func flushDeferred() {
        while !deferredFlushes.isEmpty {
            let connections = deferredFlushes
            deferredFlushes.removeAll(keepingCapacity: true)
            for connection in connections { connection.flushDeferred() }
        }
    }

    private func runQueuedTasks() {
        // Tasks may enqueue more; each round takes what is there now.
        for _ in 0..<4 {
            let tasks = queue.withLock { queue -> [@Sendable () -> Void] in
                let tasks = queue
                queue.removeAll(keepingCapacity: true)
                return tasks
            }
            if tasks.isEmpty { return }
            for task in tasks { task() }
        }
        if queue.withLock({ !$0.isEmpty }) { wake() }
    }
}

