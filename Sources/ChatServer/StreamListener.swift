import ChatCore
import PostgresClient
import ServerRuntime
import Synchronization
import Logging

private let logger = Logger(label: "chat.stream")

/// This process's ear on the database (README, Several processes): the spans every process's
/// writes announce (`PostgresChatStore.streamChannel`) go to the sequencer, and so does the
/// committed head — when the listening connection is (again) in place, since what was
/// announced while it was away is lost, and every second, in case a notification was. Other
/// processes' signals (`ClusterSignals`) go to `signals`, which also sends through it.
final class StreamListener: Sendable {
    private let listener: PostgresListener

    /// What is worth a line in the log, and how often.
    private final class Notes: Sendable {
        /// The listening connection is away (logged once per outage, not per attempt).
        let away = Atomic<Bool>(false)
        let strayLoggedAt = Atomic<Int64>(0)

        /// A notification on the channel that is none of ours: ignored (logged at most every 10 s).
        func stray(_ payload: String) {
            let now = MonotonicClock.milliseconds()
            let last = strayLoggedAt.load(ordering: .relaxed)
            guard now - last >= 10_000, strayLoggedAt.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged else { return }
            logger.warning("ignored a notification on \(PostgresChatStore.streamChannel) that no server sent: \(payload.prefix(80))")
        }
    }

    init(store: PostgresChatStore, sequencer: StreamSequencer, head: StreamHead, signals: ClusterSignals, options: PostgresConnectionOptions,
         tickMilliseconds: Int64 = 1_000) {
        let pollHead: @Sendable () -> Void = {
            store.committedHead { result in
                guard case .success(let committed) = result else { return }
                sequencer.headIs(committed)
                // Nothing before the first head is delivered here: a session starts after it.
                if let delivered = sequencer.deliveredThrough { head.advance(to: delivered) }
            }
        }
        let notes = Notes()
        listener = PostgresListener(options: options.withSessionDefaults(applicationName: "chat-server-listen"),
                                    channels: [PostgresChatStore.streamChannel, ClusterSignals.channel], tickMilliseconds: tickMilliseconds, handler: { event in
            switch event {
            case .listening:
                if notes.away.exchange(false, ordering: .relaxed) { logger.info("listening to the stream again; catching up") }
                pollHead()
                signals.listening(true)
            case .lost(let error):
                if !notes.away.exchange(true, ordering: .relaxed) {
                    logger.warning("the connection listening to other processes' writes is away (\(error)); retrying, and catching up when back")
                    signals.listening(false)
                }
            case .notification(let channel, let payload) where channel == ClusterSignals.channel:
                signals.received(payload)
            case .notification(_, let payload):
                guard let (span, origin) = Self.parse(payload) else {
                    notes.stray(payload)
                    return
                }
                sequencer.heard(span, ours: origin == store.processID)
            }
        }, tick: {
            pollHead()
            signals.tick()
        })
        signals.attach(listener)
    }

    func run() { listener.run() }
    func stop() { listener.stop() }

    /// `"<after> <through> <process id>"`, after < through; nil for anything else.
    static func parse(_ payload: String) -> (span: StreamSpan, origin: String)? {
        let parts = payload.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, let after = Int64(parts[0]), let through = Int64(parts[1]), after >= 0, through > after, !parts[2].isEmpty else {
            return nil
        }
        return (StreamSpan(after: after, through: through), String(parts[2]))
    }
}
