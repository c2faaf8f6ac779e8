import CoreMetrics
import Dispatch
import ServerRuntime
import Synchronization
import Logging

/// Module-internal and usable from inlinable code: the writer's code is inlined into its callers.
@usableFromInline let writerLog = Logger(label: "chat.writer")

/// Whoever writes read receipts: they take places in the message sequence, so the message
/// writer writes them (`MessageWriter.markRead`).
public protocol ReadReceiptWriter: Sendable {
    /// Queues a receipt; `completion` runs once it is written or failed. False, and nothing
    /// queued, when stopping or too many wait.
    func markRead(_ request: ReadRequest, completion: @escaping @Sendable (Result<ReadMark?, StoreError>) -> Void) -> Bool
}

/// What became of a message handed to `MessageWriter.write`.
public enum WriteAdmission: Sendable, Equatable {
    case queued
    /// Queued, and the queue is at or past its high-water mark (or the caller asked): the
    /// caller should take nothing more from this sender until the writer hands its context
    /// back to `resume`.
    case queuedPauseSender
    /// Not queued, the queue being full: nothing stored, and the sender is to be paused as
    /// above (reading it further would only refuse more).
    case refusedPauseSender
    /// Not queued (stopping): nothing stored.
    case refused

    public var isQueued: Bool { self == .queued || self == .queuedPauseSender }
}

/// Why a message was not stored, as the writer reports it.
public enum MessageWriteError: Error, Sendable, Equatable {
    case unknownRecipient
    /// Storage is away or overloaded: worth sending again.
    case unavailable
    case failed
}

/// Group commit: messages from every loop queue here; one `ChatStore.write` (one round trip,
/// one transaction) stores a whole batch, and the batch's outcomes are reported together,
/// in order, only after that commit — so the caller can fan them out once per event loop
/// instead of once per message. One batch is in flight at a time, so order is kept: per
/// sender, and between the store's sequence and the order of the reports. `Context` is
/// whatever the caller needs to answer (the sending socket and its ack id, for the chat).
///
/// Read receipts take places in the same sequence, so they go with the batches: those waiting
/// are written in the same transaction as the next batch, after its messages (`ChatStore.write`).
/// Written beside a batch instead, a receipt's place could be committed, seen and passed by a
/// cursor while the batch's lower places were not yet committed. In the batch's transaction
/// they cost no round trip or commit of their own.
///
/// Its code is `@inlinable` so that the caller's module specializes it for its `Context`:
/// unspecialized, every message paid for runtime generic-metadata lookups (README,
/// Performance, instructions per message).
public final class MessageWriter<Context: Sendable>: ReadReceiptWriter, Sendable {
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

    public typealias ReadCompletion = @Sendable (Result<ReadMark?, StoreError>) -> Void

    /// Messages and, at the same positions, their callers' contexts: the messages go to the
    /// store as they are, without a copy per batch. Read receipts ride along when due.
    @usableFromInline
    struct Batch: Sendable {
        @usableFromInline var messages: [NewMessage] = []
        @usableFromInline var contexts: [Context] = []
        @usableFromInline var reads: [ReadRequest] = []
        @usableFromInline var readCompletions: [ReadCompletion] = []
        /// Senders paused whom this batch's taking let go, the room then left up to the mark,
        /// and whether the queue had reached the mark since the last resume (an overload worth
        /// a line in the log; else they paused only as their budgets ran out).
        @usableFromInline var resumed: [Context] = []
        @usableFromInline var resumeRoom = 0
        @usableFromInline var resumeEndsOverload = false

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

    /// How long a receipt waits for company: the receipts of that time go in one statement,
    /// with the batch of messages then being written or alone. (Written as they came, at a
    /// steady 2,500 msg/s with one receipt per user every 300 ms, nearly every batch — or a
    /// transaction of its own — carried one: PostgreSQL's CPU rose by a fifth and the ack
    /// latency by half.)
    public static var readDelayNanoseconds: UInt64 { 25_000_000 }

    @usableFromInline
    struct State: Sendable {
        @usableFromInline var queue = Batch()
        /// Receipts waiting, oldest first, and since when the oldest has waited.
        @usableFromInline var reads: [ReadRequest] = []
        @usableFromInline var readCompletions: [ReadCompletion] = []
        @usableFromInline var readsWaitingSince: UInt64 = 0
        /// A wake-up is set for when the oldest receipt is due, the writer being idle.
        @usableFromInline var wakeScheduled = false
        /// A batch is with the store.
        @usableFromInline var writing = false
        /// Off once shutdown begins: a message taken is a message acknowledged before sockets close.
        @usableFromInline var accepting = true
        /// Batches done (committed or failed) and not yet reported, oldest first.
        @usableFromInline var unreported: [(batch: Batch, result: Result<StoreWrite, StoreError>, writtenAt: UInt64)] = []
        /// A thread is handing out `unreported`.
        @usableFromInline var reporting = false
        @usableFromInline var ids: MessageIDGenerator
        /// Senders told to pause (`queuedPauseSender`), until the queue is below half its
        /// high-water mark.
        @usableFromInline var paused: [Context] = []
        @usableFromInline var reachedHighWater = false
        /// Since when (monotonic milliseconds) the queue has been at or past the mark, senders
        /// paused, until they are resumed.
        @usableFromInline var overloadedSince: Int64 = 0

        @usableFromInline
        init(ids: MessageIDGenerator) {
            self.ids = ids
        }
    }

    @usableFromInline let store: any ChatStore
    @usableFromInline let maxBatch: Int
    @usableFromInline let maxQueued: Int
    @usableFromInline let highWater: Int
    /// A batch's outcomes, with when the store answered (`MonotonicClock.nanoseconds`): the
    /// start of its delivery.
    @usableFromInline let report: @Sendable (_ outcomes: [Outcome], _ writtenAt: UInt64) -> Void
    @usableFromInline let resume: @Sendable (_ senders: [Context], _ room: Int) -> Void
    /// With several processes on one database, a batch is handed out in its turn in the
    /// stream (after other processes' earlier writes), not at once.
    @usableFromInline let sequencer: StreamSequencer?
    @usableFromInline let state: Locked<State>
    /// When the last batch went to the store (monotonic milliseconds): one store per batch.
    @usableFromInline let lastBatchAt = Atomic<Int64>(0)
    /// Times senders were paused and resumed (overload episodes), and when that was last logged.
    @usableFromInline let pauseEpisodes = Atomic<Int>(0)
    @usableFromInline let pausesLoggedAt = Atomic<Int64>(0)
    @usableFromInline let pausesLogged = Atomic<Int>(0)
    /// Per batch, never per message (swift-metrics; no-ops until a backend is bootstrapped):
    /// messages stored, messages per batch, and how long the store took to commit a batch.
    @usableFromInline let storedMessages = Counter(label: "chat_messages_stored_total")
    @usableFromInline let batchMessages = Recorder(label: "chat_write_batch_messages")
    @usableFromInline let commitDuration = CoreMetrics.Timer(label: "chat_write_commit_seconds")

    /// No batch for `milliseconds`: the chat is quiet (then logins may take every core).
    public func isQuiet(forMilliseconds milliseconds: Int64 = 250) -> Bool {
        MonotonicClock.milliseconds() - lastBatchAt.load(ordering: .relaxed) > milliseconds
    }

    /// `report` runs on the thread that completed the batch (the database pool's) with each
    /// batch's outcomes, in the order written.
    ///
    /// Overload is met with back-pressure first: once `highWater` messages wait (default two
    /// batches: one being written, a whole one ready), each message taken answers
    /// `queuedPauseSender` and its context is kept; when taking a batch leaves at most half of
    /// `highWater` waiting, those contexts go to `resume` (on the thread taking the batch), in
    /// the order paused (a sender may be there more than once), with the room left up to the
    /// mark. A caller that stops reading
    /// paused senders meanwhile lets TCP slow them down, so the writer's batches stay full and
    /// nothing is read only to be refused; one that shares the room out as budgets and pauses a
    /// sender again once its budget is spent (`write(pauseSender: true)`) shares the writer
    /// fairly (else whoever is resumed first fills the room and the rest get a message each).
    /// `maxQueued` is the hard bound on memory and on a queued message's wait, for what the
    /// pause cannot hold back (a polling POST is read whole): beyond it a message is refused at
    /// once ("try again") rather than acknowledged seconds later, and its sender paused too.
    @inlinable
    public init(store: any ChatStore, maxBatch: Int = 2000, maxQueued: Int = 20_000, highWater: Int? = nil,
                ids: MessageIDGenerator = MessageIDGenerator(), sequencer: StreamSequencer? = nil,
                report: @escaping @Sendable (_ outcomes: [Outcome], _ writtenAt: UInt64) -> Void, resume: @escaping @Sendable (_ senders: [Context], _ room: Int) -> Void = { _, _ in }) {
        self.store = store
        self.sequencer = sequencer
        self.maxBatch = maxBatch
        self.maxQueued = maxQueued
        self.highWater = max(1, min(highWater ?? 2 * maxBatch, maxQueued))
        self.report = report
        self.resume = resume
        state = Locked(State(ids: ids))
    }

    /// Queues one message; its outcome is reported after commit (or failure). Refused, and
    /// nothing queued, when the writer is stopping or `maxQueued` messages already wait (then
    /// with a request to pause the sender); at or past the high-water mark, or with
    /// `pauseSender` (its budget spent), queued with a request to pause the sender until
    /// `resume` (see `init`).
    @inlinable
    public func write(senderID: String, receiverID: String, content: String, clientID: String? = nil, context: Context,
                      pauseSender: Bool = false) -> WriteAdmission {
        let taken: (admission: WriteAdmission, batch: Batch?) = state.withLock { state in
            guard state.accepting else { return (.refused, nil) }
            guard state.queue.count < maxQueued else {
                // The queue is full, so a batch is being written and will resume this sender.
                state.paused.append(context)
                return (.refusedPauseSender, nil)
            }
            state.queue.messages.append(NewMessage(id: state.ids.next(), senderID: senderID, receiverID: receiverID, content: content,
                                                   clientID: clientID))
            state.queue.contexts.append(context)
            var admission = WriteAdmission.queued
            if state.queue.count >= highWater {
                if !state.reachedHighWater { state.overloadedSince = MonotonicClock.milliseconds() }
                state.reachedHighWater = true
            }
            if pauseSender || state.queue.count >= highWater {
                state.paused.append(context)
                admission = .queuedPauseSender
            }
            return (admission, state.writing ? nil : takeBatch(&state))
        }
        if let batch = taken.batch { send(batch) }
        return taken.admission
    }

    /// Messages waiting for a batch (not those being written).
    public var queuedCount: Int { state.withLock { $0.queue.count } }

    /// The queue reached the mark (`highWater`) and its senders are paused until it drains to
    /// half of it: the writer is behind.
    public var isOverloaded: Bool { state.withLock { $0.reachedHighWater } }

    /// How long the writer has been overloaded without a break (0: it is not).
    public var overloadedForMilliseconds: Int64 {
        state.withLock { $0.reachedHighWater ? MonotonicClock.milliseconds() - $0.overloadedSince : 0 }
    }

    /// Queues a read receipt for a coming write, at most `readDelayNanoseconds` later (see
    /// there); at most `maxReadsPerBatch` go in one. False, and nothing
    /// queued, when the writer is stopping or `maxQueued` receipts already wait.
    @inlinable
    public func markRead(_ request: ReadRequest, completion: @escaping ReadCompletion) -> Bool {
        let taken: (accepted: Bool, batch: Batch?) = state.withLock { state in
            guard state.accepting, state.reads.count < maxQueued else { return (false, nil) }
            if state.reads.isEmpty { state.readsWaitingSince = MonotonicClock.nanoseconds() }
            state.reads.append(request)
            state.readCompletions.append(completion)
            return (true, state.writing ? nil : takeBatch(&state))
        }
        if let batch = taken.batch { send(batch) }
        return taken.accepted
    }

    /// Receipts written with one batch at most: a burst of them is spread over several batches
    /// rather than holding one batch's messages for all of them.
    public static var maxReadsPerBatch: Int { 100 }

    @inlinable
    func takeBatch(_ state: inout State) -> Batch? {
        var readsDue = false
        if !state.reads.isEmpty {
            let waited = MonotonicClock.nanoseconds() &- state.readsWaitingSince
            readsDue = state.reads.count >= Self.maxReadsPerBatch || waited >= Self.readDelayNanoseconds
            if !readsDue, state.queue.messages.isEmpty, !state.wakeScheduled {
                // Idle with receipts not yet due: nothing else would come back for them.
                state.wakeScheduled = true
                wake(afterNanoseconds: Self.readDelayNanoseconds - waited)
            }
        }
        guard !state.queue.messages.isEmpty || readsDue else {
            state.writing = false
            return nil
        }
        state.writing = true
        var batch: Batch
        if state.queue.count <= maxBatch {
            // Handed over whole; a fresh queue (keeping the capacity of a buffer the batch
            // still shares would copy-allocate it, up to 20,000 slots, every batch).
            batch = state.queue
            state.queue = Batch()
        } else {
            batch = Batch(messages: Array(state.queue.messages.prefix(maxBatch)), contexts: Array(state.queue.contexts.prefix(maxBatch)))
            state.queue.messages.removeFirst(maxBatch)
            state.queue.contexts.removeFirst(maxBatch)
        }
        if !state.paused.isEmpty, state.queue.count < highWater / 2 + 1 {
            batch.resumeRoom = max(0, highWater - state.queue.count)
            batch.resumeEndsOverload = state.reachedHighWater
            state.reachedHighWater = false
            swap(&batch.resumed, &state.paused)
        }
        if readsDue {
            if state.reads.count <= Self.maxReadsPerBatch {
                swap(&batch.reads, &state.reads)
                swap(&batch.readCompletions, &state.readCompletions)
            } else {
                batch.reads = Array(state.reads.prefix(Self.maxReadsPerBatch))
                batch.readCompletions = Array(state.readCompletions.prefix(Self.maxReadsPerBatch))
                state.reads.removeFirst(Self.maxReadsPerBatch)
                state.readCompletions.removeFirst(Self.maxReadsPerBatch)
                state.readsWaitingSince = MonotonicClock.nanoseconds()
            }
        }
        return batch
    }

    /// Later, writes what is due if the writer is still idle.
    @inlinable
    func wake(afterNanoseconds delay: UInt64) {
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(delay))) { [self] in
            let batch = state.withLock { state in
                state.wakeScheduled = false
                return state.writing ? nil : takeBatch(&state)
            }
            if let batch { send(batch) }
        }
    }

    @inlinable
    func send(_ batch: Batch) {
        lastBatchAt.store(MonotonicClock.milliseconds(), ordering: .relaxed)
        if !batch.resumed.isEmpty {
            resume(batch.resumed, batch.resumeRoom)
            if batch.resumeEndsOverload { notePauseEpisode(senders: batch.resumed.count) }
        }
        let started = MonotonicClock.nanoseconds()
        let finished: @Sendable (Result<StoreWrite, StoreError>) -> Void = { [self] result in
            let writtenAt = MonotonicClock.nanoseconds()
            if !batch.messages.isEmpty {
                // Batches of messages only (receipts alone are quicker): the two histograms
                // count the same batches.
                commitDuration.recordNanoseconds(Int64(writtenAt - started))
                batchMessages.record(batch.messages.count)
                if case .success(let written) = result {
                    storedMessages.increment(by: written.messages.reduce(0) { count, message in
                        if case .stored = message { return count + 1 } else { return count }
                    })
                }
            }
            // The next batch goes to the store first; this one is reported while it runs.
            let next = state.withLock { state in
                state.unreported.append((batch, result, writtenAt))
                return takeBatch(&state)
            }
            if let next { send(next) }
            reportInOrder()
        }
        sequencer?.ownWriteStarted()
        store.write(batch.messages, reads: batch.reads, completion: finished)
    }

    /// Overload is worth a line in the log, at most one every 10 s (it can happen ten times a
    /// second while it lasts).
    @inlinable
    func notePauseEpisode(senders: Int) {
        let episodes = pauseEpisodes.add(1, ordering: .relaxed).newValue
        let now = MonotonicClock.milliseconds()
        let last = pausesLoggedAt.load(ordering: .relaxed)
        guard now - last >= 10_000, pausesLoggedAt.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged else { return }
        let since = episodes - pausesLogged.exchange(episodes, ordering: .relaxed)
        let report = "overload: \(highWater) messages were waiting to be written, so senders were paused until the queue drained "
            + "(\(since) time\(since == 1 ? "" : "s") since the last report, \(senders) sender\(senders == 1 ? "" : "s") the last time)"
        writerLog.warning("\(report)")
    }

    /// Hands out done batches oldest first, one thread at a time (through the sequencer, when
    /// there is one, which keeps that order and may hold a batch until earlier places of
    /// other processes are delivered). A store may complete a batch before `write` returns (the in-memory one does), so the completion of the next
    /// batch can run inside this one's: it only queues its outcomes, and they are reported
    /// here, after this batch's.
    @inlinable
    func reportInOrder() {
        let reporter = state.withLock { state in
            defer { state.reporting = true }
            return !state.reporting
        }
        guard reporter else { return }
        while let (batch, result, writtenAt) = state.withLock({ state in
            if state.unreported.isEmpty { state.reporting = false }
            return state.unreported.isEmpty ? nil : state.unreported.removeFirst()
        }) {
            guard let sequencer else {
                handOut(batch, result, writtenAt)
                continue
            }
            let span: StreamSpan? = if case .success(let written) = result { written.span } else { nil }
            sequencer.ownWriteFinished(span: span) { [self] in handOut(batch, result, writtenAt) }
        }
    }

    @inlinable
    func handOut(_ batch: Batch, _ result: Result<StoreWrite, StoreError>, _ writtenAt: UInt64) {
        if !batch.messages.isEmpty { report(Self.outcomes(of: batch, result.map(\.messages)), writtenAt) }
        // After the batch's messages are handed out: a receipt never overtakes them.
        for (index, completion) in batch.readCompletions.enumerated() {
            switch result {
            case .success(let written):
                precondition(written.reads.count == batch.reads.count, "ChatStore.write answered \(written.reads.count) receipts for \(batch.reads.count)")
                completion(written.reads[index])
            case .failure(let error):
                completion(.failure(error))
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
            precondition(values.count == batch.count, "ChatStore.write answered \(values.count) results for \(batch.count) messages")
            inserted = values
        case .failure(let error):
            writerLog.warning("message batch of \(batch.count) not written: \(error)")
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
            case .repeatNotFound:
                outcomes.append(Outcome(context: batch.contexts[index], receiverID: message.receiverID, result: .failure(.unavailable)))
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
            state.withLock { !$0.writing && $0.queue.isEmpty && $0.reads.isEmpty && $0.unreported.isEmpty && !$0.reporting }
                && sequencer?.isSettled != false
        }
    }
}
