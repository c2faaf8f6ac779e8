import CLibPQ
import ServerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// A connection of its own that LISTENs on some channels and hands each notification to
/// `handler`, on the thread that calls `run()`. A lost connection is reported and made again
/// with back-off; `.listening` comes each time LISTEN is in place again, since what was
/// notified meanwhile is gone (the owner catches up by other means). `tick` runs about every
/// `tickMilliseconds` whatever the connection's state.
///
/// It also sends notifications (`notify`): those queued meanwhile go together in one statement,
/// one transaction, committed without waiting for the disk (`synchronous_commit` off on this
/// connection: they are signals, not data). While the connection is away they are dropped.
public final class PostgresListener: @unchecked Sendable {
    public enum Event: Sendable {
        case listening
        case notification(channel: String, payload: String)
        case lost(PostgresError)
    }

    private let options: PostgresConnectionOptions
    private let channels: [String]
    private let tickMilliseconds: Int64
    private let handler: @Sendable (Event) -> Void
    private let tick: @Sendable () -> Void
    private let stopping = Locked(false)
    private let outbox = Locked<[(channel: String, payload: String)]>([])
    /// Notifications queued at most; more are dropped (the connection is not keeping up).
    public static let maxQueuedNotifications = 10_000
    private let wakePipe = WakePipe()

    public init(options: PostgresConnectionOptions, channels: [String], tickMilliseconds: Int64 = 1_000,
                handler: @escaping @Sendable (Event) -> Void, tick: @escaping @Sendable () -> Void = {}) {
        self.options = options
        self.channels = channels
        self.tickMilliseconds = tickMilliseconds
        self.handler = handler
        self.tick = tick
    }

    /// Makes `run()` return soon (from any thread).
    public func stop() {
        stopping.withLock { $0 = true }
        wakePipe.wake()
    }

    private var isStopping: Bool { stopping.withLock { $0 } }

    /// Queues a notification to send (from any thread); false when dropped (too many queued).
    @discardableResult
    public func notify(channel: String, payload: String) -> Bool {
        let (queued, first) = outbox.withLock { outbox -> (Bool, Bool) in
            guard outbox.count < Self.maxQueuedNotifications else { return (false, false) }
            outbox.append((channel, payload))
            return (true, outbox.count == 1)
        }
        if first { wakePipe.wake() }
        return queued
    }

    /// Sends what is queued, in one statement; dropped without a connection or on failure
    /// (the failure then shows as the connection lost).
    private func sendQueued(on connection: OpaquePointer?) {
        let queued = outbox.withLock { outbox in
            defer { outbox.removeAll(keepingCapacity: true) }
            return outbox
        }
        guard let connection, !queued.isEmpty else { return }
        let result = PostgresConnection.withCParameters([PostgresArrayLiteral.text(queued.map(\.channel)), PostgresArrayLiteral.text(queued.map(\.payload))]) {
            count, values in
            PQexecParams(connection, "SELECT count(pg_notify(n.channel, n.payload)) FROM unnest($1::text[], $2::text[]) AS n(channel, payload)",
                         count, nil, values, nil, nil, 0)
        }
        PQclear(result)
    }

    /// Listens until `stop()`.
    public func run() {
        var backoff: Int64 = 100
        var nextTick = MonotonicClock.milliseconds() + tickMilliseconds
        var connection: OpaquePointer?
        var retryAt: Int64 = 0
        while !isStopping {
            var now = MonotonicClock.milliseconds()
            if connection == nil, now >= retryAt {
                switch listen() {
                case .success(let made):
                    connection = made
                    backoff = 100
                    handler(.listening)
                case .failure(let error):
                    handler(.lost(error))
                    retryAt = now + backoff
                    backoff = min(backoff * 2, 5_000)
                }
            }
            now = MonotonicClock.milliseconds()
            if now >= nextTick {
                tick()
                nextTick = now + tickMilliseconds
            }
            var fds = [pollfd(fd: wakePipe.readFD, events: Int16(POLLIN), revents: 0)]
            if let connection { fds.append(pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)) }
            var timeout = nextTick - now
            if connection == nil { timeout = min(timeout, max(0, retryAt - now)) }
            _ = poll(&fds, nfds_t(fds.count), Int32(max(0, timeout)))
            if fds[0].revents != 0 {
                wakePipe.drain()
            }
            sendQueued(on: connection)
            guard let current = connection else { continue }
            let readable = fds.count > 1 && fds[1].revents != 0
            if (readable && PQconsumeInput(current) != 1) || PQstatus(current) == CONNECTION_BAD {
                let message = String(cString: PQerrorMessage(current)).trimmingTrailingNewlines()
                PQfinish(current)
                connection = nil
                retryAt = MonotonicClock.milliseconds() + backoff
                handler(.lost(PostgresError(kind: .connectionLost, message: message.isEmpty ? "the listening connection was lost" : message)))
                continue
            }
            // Also those libpq read while sending.
            while let notification = PQnotifies(current) {
                let channel = String(cString: notification.pointee.relname)
                let payload = String(cString: notification.pointee.extra)
                PQfreemem(notification)
                handler(.notification(channel: channel, payload: payload))
            }
        }
        if let connection { PQfinish(connection) }
    }

    /// A new connection with LISTEN in place on every channel (blocking: this thread's only work).
    private func listen() -> Result<OpaquePointer, PostgresError> {
        let made = options.withCArrays { keys, values in PQconnectdbParams(keys, values, 1) }
        guard let made else { return .failure(PostgresError(kind: .connectionFailed, message: "out of memory")) }
        guard PQstatus(made) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(made)).trimmingTrailingNewlines()
            PQfinish(made)
            return .failure(PostgresError(kind: .connectionFailed, message: message))
        }
        let unhurried = PQexec(made, "SET synchronous_commit = off")
        PQclear(unhurried)
        for channel in channels {
            let quoted = channel.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"")
            let result = PQexec(made, "LISTEN \"\(quoted)\"")
            defer { PQclear(result) }
            do {
                try PostgresConnection.check(result, connection: made)
            } catch {
                PQfinish(made)
                return .failure(error)
            }
        }
        PQsetnonblocking(made, 1)
        return .success(made)
    }
}
