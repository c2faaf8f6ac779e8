import CLinux
import Synchronization

/// A value behind a lock: Swift's `Mutex`, which every shared state of the server uses
/// through this type. Under ThreadSanitizer (`make sanitize` builds with `-DCHAT_TSAN`) each
/// critical section is also announced to it: `Mutex` locks with atomics and futexes inside the
/// Swift runtime, which ThreadSanitizer does not see, so without the announcement it reports
/// every access under the lock as a race.
public struct Locked<Value: ~Copyable>: ~Copyable, @unchecked Sendable {
    @usableFromInline let mutex: Mutex<Value>

    @inlinable
    public init(_ initialValue: consuming sending Value) {
        mutex = Mutex(initialValue)
    }

    @inlinable
    public borrowing func withLock<Result: ~Copyable, E: Error>(_ body: (inout sending Value) throws(E) -> sending Result) throws(E) -> sending Result {
        #if CHAT_TSAN
        // ThreadSanitizer knows the lock by the mutex's address (the value's would be an access).
        let address = withUnsafePointer(to: mutex) { UnsafeMutableRawPointer(mutating: $0) }
        return try mutex.withLock { (value: inout sending Value) throws(E) -> sending Result in
            __tsan_acquire(address)
            defer { __tsan_release(address) }
            return try body(&value)
        }
        #else
        return try mutex.withLock(body)
        #endif
    }
}
