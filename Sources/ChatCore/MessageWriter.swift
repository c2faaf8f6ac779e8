import ServerRuntime
import Synchronization

/// Work that takes places in the message sequence outside a message batch. It calls its
/// argument once, when its write is done, with what to report then: the report runs in order
/// with the batches' reports.
public typealias BetweenBatchesWork = @Sendable (_ finished: @escaping @Sendable (_ report: @escaping @Sendable () -> Void) -> Void) -> Void

/// Whoever hands out places in the message sequence, and so must run other writes that take
/// places in it between its own (the message writer).
public protocol StreamSequencer: Sendable {
    /// Runs `work` with no other write of places in flight; false when stopping (not run).
    func runBetweenBatches(_ work: @escaping BetweenBatchesWork) -> Bool
}

/// Why a message was not stored, as the writer reports it.
public enum MessageWriteError: Error, Sendable, Equatable {
    case unknownRecipient
    /// Storage is away or overloaded: worth sending again.
    case unavailable
    case failed
}

/// Group commit: messages from every loop queue here; one `insertMessages` (one round trip,
/// one transaction) stores a whole batch, and the batch's outcomes are reported together,
/// in order, only after that commit — so the caller can fan them out once per event loop
/// instead of once per message. One batch is in flight at a time, so order is kept: per
/// sender, and between the store's sequence and the order of the reports. `Context` is
/// whatever the caller needs to answer (the sending socket and its ack id, for the chat).
///
/// Other writes that take places in the same sequence (read receipts) run between batches,
/// never beside one (`runBetweenBatches`): a place handed out while a batch with lower
/// places is still uncommitted could be seen, and passed, before that batch.
///
/// Its code is `@inlinable` so that the caller's module specializes it for its `Context`:
/// unspecialized, every message paid for runtime generic-metadata lookups (README,
/// Performance, instructions per message).
public final class MessageWriter<Context: Sendable>: StreamSequencer, Sendable {
    public struct Outcome: Sendable {
        public let context: Context
        public let receiverID: String
        public let result: Result<StoredMessage, MessageWriteError>
        /// The message was sent before with the same `client_id`: `result` is that message, and
        /// nothing was stored or is to be delivered now.
        public let isRepeat: Bool

        @inlinable
        init(context: Context, receiverID: String, result: Result<StoredMessage, MessageWriteError>, isRepeat: Bool = false) {
            self.context = context
            self.receiverID = receiverID
            self.result = result
            self.isRepeat = isRepeat
        }
    }

    /// Messages and, at the same positions, their callers' contexts: the messages go to the
    /// store as they are, without a copy per batch.
    @usableFromInline
    struct Batch: Sendable {
        @usableFromInline var messages: [NewMessage] = []
        @usableFromInline var contexts: [Context] = []

        @inlinable
        init() {}

        @inlinable
        init(messages: [NewMessage], contexts: [Context]) {
            self.messages = messages
            self.contexts = contexts
        }

        @inlinable
        var count: Int { messages.count }

        @inlinable
        var isEmpty: Bool { messages.isEmpty }
    }

    /// What is done and waits to be reported, in the order it was written.
    @usableFromInline
    enum Done: Sendable {
        case batch(Batch, Result<[InsertedMessage], StoreError>)
        case between(report: @Sendable () -> Void)
    }

    /// What goes to the store next.
    @usableFromInline
    enum Next: Sendable {
        case batch(Batch)
        case between(BetweenBatchesWork)
    }

    @usableFromInline
    struct State: Sendable {
        @usableFromInline var queue = Batch()
        /// Work waiting for no batch to be in flight, oldest first.
        @usableFromInline var between: [BetweenBatchesWork] = []
        /// A batch or work between batches is with the store.
        @usableFromInline var writing = false
        /// Off once shutdown begins: a message taken is a message acknowledged before sockets close.
        @usableFromInline var accepting = true
        /// Batches done (committed or failed) and not yet reported, oldest first.
        @usableFromInline var unreported: [Done] = []
        /// A thread is handing out `unreported`.
        @usableFromInline var reporting = false
        @usableFromInline var ids: MessageIDGenerator

        @usableFromInline
        init(ids: MessageIDGenerator) {
            self.ids = ids
        }
    }

    @usableFromInline let store: any ChatStore
    @usableFromInline let maxBatch: Int
    @usableFromInline let maxQueued: Int
    @usableFromInline let report: @Sendable ([Outcome]) -> Void
    @usableFromInline let state: Mutex<State>

    /// `report` runs on the thread that completed the batch (the database pool's) with each
    /// batch's outcomes, in the order written. `maxQueued` bounds memory and the wait of a
    /// queued message under overload: 20,000 is about a third of a second of what the writer
    /// commits here at saturation; beyond it a message is refused at once ("try again")
    /// rather than acknowledged seconds later.
    @inlinable
    public init(store: any ChatStore, maxBatch: Int = 2000, maxQueued: Int = 20_000, ids: MessageIDGenerator = MessageIDGenerator(),
                report: @escaping @Sendable ([Outcome]) -> Void) {
        self.store = store
        self.maxBatch = maxBatch
        self.maxQueued = maxQueued
        self.report = report
        state = Mutex(State(ids: ids))
    }

    /// Queues one message; its outcome is reported after commit (or failure). False, and
    /// nothing queued, when the writer is stopping or `maxQueued` messages already wait.
    @inlinable
    public func write(senderID: String, receiverID: String, content: String, clientID: String? = nil, context: Context) -> Bool {
        let taken: (accepted: Bool, batch: Batch?) = state.withLock { state in
            guard state.accepting, state.queue.count < maxQueued else { return (false, nil) }
            state.queue.messages.append(NewMessage(id: state.ids.next(), senderID: senderID, receiverID: receiverID, content: content,
                                                   clientID: clientID))
            state.queue.contexts.append(context)
            return (true, state.writing ? nil : takeBatch(&state))
        }
        if let batch = taken.batch { send(.batch(batch)) }
        return taken.accepted
    }

    /// Runs `work` when no batch is in flight: at once when the writer is idle, else after the
    /// batch being written and before the next. Such work runs one at a time, in the order
    /// given; messages queued meanwhile wait for it. False, and nothing run, once stopping.
    @inlinable
    public func runBetweenBatches(_ work: @escaping BetweenBatchesWork) -> Bool {
        let now: Bool? = state.withLock { state in
            guard state.accepting else { return nil }
            if state.writing {
                state.between.append(work)
                return false
            }
            state.writing = true
            return true
        }
        guard let now else { return false }
        if now { send(.between(work)) }
        return true
    }

    /// The next thing to send, or nil and not writing. Batches and work between them take
    /// turns, so that neither waits behind a steady stream of the other.
    @inlinable
    func takeNext(_ state: inout State, after done: Done) -> Next? {
        if case .between = done, let batch = takeBatch(&state) { return .batch(batch) }
        if !state.between.isEmpty {
            state.writing = true
            return .between(state.between.removeFirst())
        }
        return takeBatch(&state).map(Next.batch)
    }

    @inlinable
    func takeBatch(_ state: inout State) -> Batch? {
        guard !state.queue.isEmpty else {
            state.writing = false
            return nil
        }
        state.writing = true
        if state.queue.count <= maxBatch {
            // Handed over whole; a fresh queue (keeping the capacity of a buffer the batch
            // still shares would copy-allocate it, up to 20,000 slots, every batch).
            defer { state.queue = Batch() }
            return state.queue
        }
        let batch = Batch(messages: Array(state.queue.messages.prefix(maxBatch)), contexts: Array(state.queue.contexts.prefix(maxBatch)))
        state.queue.messages.removeFirst(maxBatch)
        state.queue.contexts.removeFirst(maxBatch)
        return batch
    }

    @inlinable
    func send(_ next: Next) {
        switch next {
        case .batch(let batch):
            store.insertMessages(batch.messages) { [self] result in finished(.batch(batch, result)) }
        case .between(let work):
            work { [self] report in finished(.between(report: report)) }
        }
    }

    /// The next batch goes to the store first; what is done is reported while it runs.
    @inlinable
    func finished(_ done: Done) {
        let next = state.withLock { state in
            state.unreported.append(done)
            return takeNext(&state, after: done)
        }
        if let next { send(next) }
        reportInOrder()
    }

    /// Hands out done batches oldest first, one thread at a time. A store may complete a batch
    /// before `insertMessages` returns (the in-memory one does), so the completion of the next
    /// batch can run inside this one's: it only queues its outcomes, and they are reported
    /// here, after this batch's.
    @inlinable
    func reportInOrder() {
        let reporter = state.withLock { state in
            defer { state.reporting = true }
            return !state.reporting
        }
        guard reporter else { return }
        while let done = state.withLock({ state in
            if state.unreported.isEmpty { state.reporting = false }
            return state.unreported.isEmpty ? nil : state.unreported.removeFirst()
        }) {
            switch done {
            case .batch(let batch, let result): report(Self.outcomes(of: batch, result))
            case .between(let reportWork): reportWork()
            }
        }
    }

    @inlinable
    static func outcomes(of batch: Batch, _ result: Result<[InsertedMessage], StoreError>) -> [Outcome] {
        let inserted: [InsertedMessage]
        switch result {
        case .success(let values):
            // The rows may be committed: reporting them as failed would tell senders a stored
            // message was not sent. A store that answers so is broken, not unavailable.
            precondition(values.count == batch.count, "ChatStore.insertMessages answered \(values.count) results for \(batch.count) messages")
            inserted = values
        case .failure(let error):
            Log.warning("message batch of \(batch.count) not written: \(error)")
            let failure: MessageWriteError = error == .unavailable ? .unavailable : .failed
            return zip(batch.messages, batch.contexts).map { Outcome(context: $1, receiverID: $0.receiverID, result: .failure(failure)) }
        }
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(batch.count)
        for index in 0..<batch.count {
            let message = batch.messages[index]
            switch inserted[index] {
            case .stored(let seq, let createdAt):
                outcomes.append(Outcome(context: batch.contexts[index], receiverID: message.receiverID, result: .success(StoredMessage(
                    id: message.id, senderID: message.senderID, receiverID: message.receiverID, content: message.content,
                    createdAt: createdAt, seq: seq, clientID: message.clientID))))
            case .repeatOf(let original):
                outcomes.append(Outcome(context: batch.contexts[index], receiverID: original.receiverID, result: .success(original), isRepeat: true))
            case .unknownReceiver:
                outcomes.append(Outcome(context: batch.contexts[index], receiverID: message.receiverID, result: .failure(.unknownRecipient)))
            }
        }
        return outcomes
    }

    /// At shutdown: refuses new messages from now on, then waits (on the calling thread) until
    /// nothing is queued or being written, or the time-out passes — so every message stored is
    /// also acknowledged before the sockets close.
    @inlinable
    public func waitUntilIdle(timeoutMilliseconds: Int64) -> Bool {
        state.withLock { $0.accepting = false }
        return MonotonicClock.wait(upTo: timeoutMilliseconds) {
            state.withLock { !$0.writing && $0.queue.isEmpty && $0.between.isEmpty && $0.unreported.isEmpty && !$0.reporting }
        }
    }
}
