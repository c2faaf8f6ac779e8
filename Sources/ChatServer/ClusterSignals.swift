import PostgresClient
import ServerRuntime
import Synchronization
import Logging

private let logger = Logger(label: "chat.stream")

/// What processes on one database tell each other that is not stored (README, Several
/// processes): typing, who is online where, tokens revoked, blocks changed. Each signal is one
/// notification on `channel`, `"<process id> <kind> <arguments…>"`, sent on the listening
/// connection (several in one statement, committed without waiting for the disk). Signals are
/// best effort: one sent while the connection is away is lost, so whoever depends on them
/// resynchronises when it is back (`onListening`). A process hears its own too, and ignores them.
final class ClusterSignals: Sendable {
    static let channel = "chat_signal"

    typealias Handler = @Sendable (_ origin: String, _ arguments: [Substring]) -> Void

    let processID: String
    private let listener = Locked<PostgresListener?>(nil)
    private let handlers = Locked<[String: Handler]>([:])
    private let listeningHandlers = Locked<[@Sendable (_ listening: Bool) -> Void]>([])
    private let tickHandlers = Locked<[@Sendable () -> Void]>([])

    init(processID: String) {
        self.processID = processID
    }

    /// Where signals go out (set once the listener exists).
    func attach(_ listener: PostgresListener) {
        self.listener.withLock { $0 = listener }
    }

    /// Sends `kind` with its arguments (none may contain a space) to every other process.
    func send(_ kind: String, _ arguments: String...) {
        send(kind, arguments: arguments)
    }

    func send(_ kind: String, arguments: [String]) {
        let payload = ([processID, kind] + arguments).joined(separator: " ")
        guard let listener = listener.withLock({ $0 }) else { return }
        if !listener.notify(channel: Self.channel, payload: payload) {
            logger.warning("a signal to other processes was dropped: too many waiting to be sent")
        }
    }

    /// `handler` gets every other process's signals of `kind`.
    func on(_ kind: String, _ handler: @escaping Handler) {
        handlers.withLock { $0[kind] = handler }
    }

    /// `handler` learns when the listening connection is (again) in place (true) or lost (false).
    func onListening(_ handler: @escaping @Sendable (_ listening: Bool) -> Void) {
        listeningHandlers.withLock { $0.append(handler) }
    }

    /// A notification on `channel`; ours and malformed ones are ignored.
    func received(_ payload: String) {
        let parts = payload.split(separator: " ")
        guard parts.count >= 2, parts[0] != Substring(processID) else { return }
        guard let handler = handlers.withLock({ $0[String(parts[1])] }) else { return }
        handler(String(parts[0]), Array(parts.dropFirst(2)))
    }

    /// `handler` runs about every second (on the listener's thread).
    func onTick(_ handler: @escaping @Sendable () -> Void) {
        tickHandlers.withLock { $0.append(handler) }
    }

    func listening(_ listening: Bool) {
        for handler in listeningHandlers.withLock({ $0 }) { handler(listening) }
    }

    func tick() {
        for handler in tickHandlers.withLock({ $0 }) { handler() }
    }

    /// At most this many bytes of arguments per signal: a notification's payload must stay
    /// under 8,000 bytes.
    static let maxArgumentBytes = 7_000
}
