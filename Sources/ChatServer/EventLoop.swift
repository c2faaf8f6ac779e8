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
    /// Scratch space every connection of this loop reads into before keeping what it needs.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
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
        let fd = selectable.fd
        epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
        if Int(fd) < selectables.count, selectables[Int(fd)] === selectable {
            selectables[Int(fd)] = nil
            registeredCount -= 1
        }
        close(fd)
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
            let count = epoll_wait(epollFD, &events, Int32(events.count), 1000)
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
            if now - lastTick >= 1000 {
                lastTick = now
                for selectable in selectables.compactMap({ $0 }) { selectable.tick(now: now) }
            }
            if shuttingDown && registeredCount == 0 { break }
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
