import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// A plain thread, for event loops, the database pool and the bcrypt workers: each blocks in
/// its own wait (epoll, poll, a semaphore) for its whole life, which is no job for Swift
/// concurrency's pool.
public final class PlatformThread: @unchecked Sendable {
    private var handle = pthread_t()
    private let body: () -> Void
    public let name: String

    private init(name: String, body: @escaping () -> Void) {
        self.name = name
        self.body = body
    }

    public static func start(name: String, _ body: @escaping @Sendable () -> Void) -> PlatformThread {
        let thread = PlatformThread(name: name, body: body)
        let context = Unmanaged.passRetained(thread).toOpaque()
        let result = pthread_create(&thread.handle, nil, { context in
            let thread = Unmanaged<PlatformThread>.fromOpaque(context!).takeRetainedValue()
            _ = pthread_setname_np(pthread_self(), String(thread.name.prefix(15)))
            thread.body()
            return nil
        }, context)
        precondition(result == 0, "pthread_create failed: \(result)")
        return thread
    }

    public func join() {
        pthread_join(handle, nil)
    }

    /// For a thread nobody joins: its resources go when it ends.
    public func detach() {
        pthread_detach(handle)
    }
}
