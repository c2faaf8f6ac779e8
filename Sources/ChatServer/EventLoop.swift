import CLinux
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Something an event loop watches: a listening socket or a connection.
protocol Selectable: AnyObject {
    var fd: Int32 { get }
    /// Called on the loop with the epoll event bits.
    func handleEvents(_ events: UInt32)
    /// Called on the loop about once a second, for time-outs.
    func tick(now: Int64)
    /// The server is stopping: finish what is in flight, then close.
    func beginShutdown()
}

/// A connection that writes what it queued during this turn of the loop in one go, at its end.
protocol DeferredFlushing: AnyObject {
    func flushDeferred()
}

/// One thread, one epoll: the ae.c idea. Everything registered here is touched only on this
/// thread; other threads hand it work through `execute`, which wakes it with an eventfd.
final class EventLoop: @unchecked Sendable {
    let index: Int
    private let epollFD: Int32
    private let wakeFD: Int32
    private let queue = Mutex<[@Sendable () -> Void]>([])
    private let stopRequested = Atomic<Bool>(false)
    private var selectables: [Selectable?] = []
    private var registeredCount = 0
    private var thread = pthread_t()
    private var lastTick: Int64 = 0
    private var shuttingDown = false
    /// Milliseconds on the monotonic clock, read once per wake-up.
    private(set) var now: Int64 = monotonicMilliseconds()
    private var timers = TimerHeap()
    /// Scratch space every connection of this loop reads into before keeping what it needs.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    /// Connections with output queued this turn: one write each after the turn's events and
    /// tasks, however many frames they queued (a batch of acks to one socket is one write).
    private var deferredFlushes: [DeferredFlushing] = []
    private var cachedDateSecond = -1
    private var cachedDate = ""

    init(index: Int) {
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

    var isOnLoop: Bool { pthread_equal(pthread_self(), thread) != 0 }

    /// Runs `task` on this loop's thread, soon. Safe from any thread.
    func execute(_ task: @escaping @Sendable () -> Void) {
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
    func requestShutdown() {
        execute { [self] in
            shuttingDown = true
            for selectable in selectables.compactMap({ $0 }) { selectable.beginShutdown() }
        }
    }

    /// Makes `run()` return at once, whatever is still open.
    func forceStop() {
        stopRequested.store(true, ordering: .relaxed)
        wake()
    }

    func register(_ selectable: Selectable, events: UInt32) {
        let fd = Int(selectable.fd)
        if fd >= selectables.count { selectables += Array(repeating: nil, count: fd - selectables.count + 1) }
        selectables[fd] = selectable
        registeredCount += 1
        var event = epoll_event()
        event.events = events
        event.data.fd = selectable.fd
        epoll_ctl(epollFD, EPOLL_CTL_ADD, selectable.fd, &event)
    }

    func modify(_ selectable: Selectable, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.fd = selectable.fd
        epoll_ctl(epollFD, EPOLL_CTL_MOD, selectable.fd, &event)
    }

    /// Forgets and closes the descriptor.
    func deregisterAndClose(_ selectable: Selectable) {
        deregister(selectable)
        close(selectable.fd)
    }

    /// Runs `task` on this loop after `milliseconds`, unless the returned timer is cancelled first.
    /// Call on the loop.
    @discardableResult
    func schedule(after milliseconds: Int64, _ task: @escaping () -> Void) -> LoopTimer {
        let timer = LoopTimer(deadline: monotonicMilliseconds() + milliseconds, task: task)
        timers.insert(timer)
        return timer
    }

    /// Hands a descriptor to another owner without closing it (a WebSocket upgrade).
    func deregister(_ selectable: Selectable) {
        let fd = selectable.fd
        epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
        if Int(fd) < selectables.count, selectables[Int(fd)] === selectable {
            selectables[Int(fd)] = nil
            registeredCount -= 1
        }
    }

    /// The HTTP `Date` header value, formatted once per second.
    var httpDate: String {
        var seconds = timespec()
        clock_gettime(CLOCK_REALTIME, &seconds)
        if seconds.tv_sec != cachedDateSecond {
            cachedDateSecond = seconds.tv_sec
            cachedDate = HTTPResponse.httpDate(seconds.tv_sec)
        }
        return cachedDate
    }

    func run() {
        thread = pthread_self()
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while !stopRequested.load(ordering: .relaxed) {
            let wait = timers.nextDeadline().map { max(0, min(1000, $0 - monotonicMilliseconds())) } ?? 1000
            let count = epoll_wait(epollFD, &events, Int32(events.count), Int32(wait))
            now = monotonicMilliseconds()
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
    func flushAtEndOfTurn(_ connection: DeferredFlushing) {
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

func monotonicMilliseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// A one-shot timer of an event loop; `cancel()` on the loop.
final class LoopTimer {
    let deadline: Int64
    private var task: (() -> Void)?

    init(deadline: Int64, task: @escaping () -> Void) {
        self.deadline = deadline
        self.task = task
    }

    var isCancelled: Bool { task == nil }

    func cancel() { task = nil }

    func fire() {
        let task = self.task
        self.task = nil
        task?()
    }
}

/// A binary min-heap of timers by deadline; cancelled ones are dropped when they surface.
struct TimerHeap {
    private var items: [LoopTimer] = []

    mutating func nextDeadline() -> Int64? {
        while let first = items.first, first.isCancelled { _ = removeFirst() }
        return items.first?.deadline
    }

    mutating func insert(_ timer: LoopTimer) {
        items.append(timer)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].deadline < items[parent].deadline else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popDue(now: Int64) -> LoopTimer? {
        while let first = items.first {
            if first.isCancelled { _ = removeFirst(); continue }
            guard first.deadline <= now else { return nil }
            return removeFirst()
        }
        return nil
    }

    private mutating func removeFirst() -> LoopTimer {
        let first = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < items.count, items[left].deadline < items[smallest].deadline { smallest = left }
                if right < items.count, items[right].deadline < items[smallest].deadline { smallest = right }
                guard smallest != parent else { break }
                items.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return first
    }
}

/// Carries a value that belongs to one loop through another thread and back: it may only be
/// used on that loop (NIO's NIOLoopBound, without the check).
struct LoopBound<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
