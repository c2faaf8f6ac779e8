#if canImport(Glibc)
import Glibc
#endif

/// Bytes waiting to be written to a non-blocking socket, written as far as the socket takes
/// them. Shared by HTTP and WebSocket connections.
public struct OutputBuffer {
    public enum FlushResult {
        /// Everything is written.
        case drained
        /// The socket is full; wait for EPOLLOUT.
        case pending
        /// The peer is gone.
        case failed
    }

    private var bytes: [UInt8] = []
    private var start = 0

    public init() {}

    public var isEmpty: Bool { start == bytes.count }
    public var pendingCount: Int { bytes.count - start }

    public mutating func append(_ more: [UInt8]) {
        if bytes.isEmpty { bytes = more } else { bytes.append(contentsOf: more) }
    }

    /// Frees the buffer's capacity when nothing waits in it (idle connections keep none).
    public mutating func releaseIfEmpty() {
        guard isEmpty else { return }
        bytes = []
        start = 0
    }

    /// Lets a caller frame bytes straight into the buffer.
    public mutating func withAppending<R>(_ body: (inout [UInt8]) -> R) -> R { body(&bytes) }

    /// Writes what the socket accepts; `progress` is called when any byte went out.
    public mutating func flush(to fd: Int32, progress: () -> Void) -> FlushResult {
        while start < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + start, $0.count - start) }
            if count > 0 {
                start += count
                progress()
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return .pending
            } else {
                return .failed
            }
        }
        bytes.removeAll(keepingCapacity: bytes.capacity <= 64 * 1024)
        start = 0
        return .drained
    }
}
