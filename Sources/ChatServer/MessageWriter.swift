import CLinux
import ChatCore
import PostgresClient
import Synchronization

/// A stored message as the writer reports it, once committed.
struct StoredMessage: Sendable {
    let id: String
    let senderID: String
    let receiverID: String
    let content: String
    let createdAt: String
}

enum MessageWriteError: Error, Sendable, Equatable {
    case unknownRecipient
    case unavailable
    case failed
}

/// Group commit: messages from every loop queue here; one INSERT (one round trip, one
/// implicit transaction) writes a whole batch, and the batch's outcomes are reported together,
/// in order, only after that COMMIT — so the caller can fan them out once per event loop
/// instead of once per message. One batch is in flight at a time, so order is kept: per
/// sender, and between the sequence numbers and the order of the reports. `Context` is
/// whatever the caller needs to answer (the sending socket and its ack id, for the chat).
final class MessageWriter<Context: Sendable>: Sendable {
    struct Outcome: Sendable {
        let context: Context
        let receiverID: String
        let result: Result<StoredMessage, MessageWriteError>
    }

    private struct Pending: Sendable {
        let id: String
        let senderID: String
        let receiverID: String
        let content: String
        let context: Context
    }

    private struct State: Sendable {
        var queue: [Pending] = []
        var writing = false
        /// Off once shutdown begins: a message taken is a message acknowledged before sockets close.
        var accepting = true
        /// Batches committed whose outcomes are still being handed out.
        var reporting = 0
        var ids = MessageIDGenerator()
    }

    private let pool: PostgresPool
    private let maxBatch: Int
    private let maxQueued: Int
    private let report: @Sendable ([Outcome]) -> Void
    private let state = Mutex(State())

    /// `report` runs on the pool's thread with each batch's outcomes, in the order written.
    /// `maxQueued` bounds memory and the wait of a queued message under overload: 20,000 is
    /// about a third of a second of what the writer commits here at saturation; beyond it a
    /// message is refused at once ("try again") rather than acknowledged seconds later.
    init(pool: PostgresPool, maxBatch: Int = 2000, maxQueued: Int = 20_000, report: @escaping @Sendable ([Outcome]) -> Void) {
        self.pool = pool
        self.maxBatch = maxBatch
        self.maxQueued = maxQueued
        self.report = report
    }

    /// Queues one message; its outcome is reported after COMMIT (or failure). False, and
    /// nothing queued, when the writer is stopping or `maxQueued` messages already wait.
    func write(senderID: String, receiverID: String, content: String, context: Context) -> Bool {
        let taken: (accepted: Bool, batch: [Pending]?) = state.withLock { state in
            guard state.accepting, state.queue.count < maxQueued else { return (false, nil) }
            state.queue.append(Pending(id: state.ids.next(), senderID: senderID, receiverID: receiverID, content: content, context: context))
            return (true, state.writing ? nil : takeBatch(&state))
        }
        if let batch = taken.batch { send(batch) }
        return taken.accepted
    }

    private func takeBatch(_ state: inout State) -> [Pending]? {
        guard !state.queue.isEmpty else {
            state.writing = false
            return nil
        }
        state.writing = true
        if state.queue.count <= maxBatch {
            // Handed over whole; a fresh queue (keeping the capacity of a buffer the batch
            // still shares would copy-allocate it, up to 20,000 slots, every batch).
            defer { state.queue = [] }
            return state.queue
        }
        let batch = Array(state.queue.prefix(maxBatch))
        state.queue.removeFirst(maxBatch)
        return batch
    }

    private func send(_ batch: [Pending]) {
        // Rows whose receiver is no user are left out by the join and reported as such.
        let statement = PostgresStatement("""
            INSERT INTO messages (id, sender_id, receiver_id, content)
            SELECT i.id, i.sender_id, i.receiver_id, i.content
            FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[]) WITH ORDINALITY AS i(id, sender_id, receiver_id, content, n)
            JOIN users u ON u.id = i.receiver_id
            ORDER BY i.n
            RETURNING id::text AS id, created_at::text AS created_at
            """, [PostgresArrayLiteral.text(batch.map { $0.id }), PostgresArrayLiteral.text(batch.map { $0.senderID }),
                  PostgresArrayLiteral.text(batch.map { $0.receiverID }), PostgresArrayLiteral.text(batch.map { $0.content })],
            preparedName: "chat_insert_messages")
        pool.submit(statement) { [self] result in
            // The next batch goes to the database first; this one is reported while it runs.
            let next = state.withLock { state in
                state.reporting += 1
                return takeBatch(&state)
            }
            if let next { send(next) }
            report(Self.outcomes(of: batch, result))
            state.withLock { $0.reporting -= 1 }
        }
    }

    private static func outcomes(of batch: [Pending], _ result: Result<PostgresRows, PostgresError>) -> [Outcome] {
        let rows: PostgresRows
        switch result {
        case .success(let value): rows = value
        case .failure(let error):
            Log.warning("message batch of \(batch.count) not written: \(error)")
            let failure: MessageWriteError = error.kind == .server ? .failed : .unavailable
            return batch.map { Outcome(context: $0.context, receiverID: $0.receiverID, result: .failure(failure)) }
        }
        let created = Self.returnedValues(ids: batch.map { $0.id }, rows: rows.rows)
        var lastText = "", lastCreatedAt = ""
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(batch.count)
        for (pending, text) in zip(batch, created) {
            guard let text else {
                outcomes.append(Outcome(context: pending.context, receiverID: pending.receiverID, result: .failure(.unknownRecipient)))
                continue
            }
            // A batch shares one transaction time: converted once.
            if text != lastText { (lastText, lastCreatedAt) = (text, Timestamps.fromPostgres(text)) }
            outcomes.append(Outcome(context: pending.context, receiverID: pending.receiverID, result: .success(StoredMessage(
                id: pending.id, senderID: pending.senderID, receiverID: pending.receiverID, content: pending.content, createdAt: lastCreatedAt))))
        }
        return outcomes
    }

    /// For each of a batch's ids, the second column of the `RETURNING id, …` row that carries
    /// it ("" for NULL), or nil when its row was left out (an unknown receiver). RETURNING lists rows in the
    /// order inserted — the batch's, minus rows left out — so both are walked together without
    /// hashing; from the first row out of step on, a lookup by id takes over.
    static func returnedValues(ids: [String], rows: [[String?]]) -> [String?] {
        var values: [String?] = []
        values.reserveCapacity(ids.count)
        var row = 0
        var byID: [String: String]?
        for id in ids {
            if byID == nil, row < rows.count, rows[row][0] == id {
                values.append(rows[row][1] ?? "")
                row += 1
                continue
            }
            if byID == nil {
                byID = Dictionary(rows[row...].map { ($0[0] ?? "", $0[1] ?? "") }, uniquingKeysWith: { first, _ in first })
            }
            values.append(byID?[id])
        }
        return values
    }

    /// At shutdown: refuses new messages from now on, then waits (on the calling thread) until
    /// nothing is queued or being written, or the time-out passes — so every message stored is
    /// also acknowledged before the sockets close.
    func waitUntilIdle(timeoutMilliseconds: Int64) -> Bool {
        state.withLock { $0.accepting = false }
        let deadline = monotonicMilliseconds() + timeoutMilliseconds
        while monotonicMilliseconds() < deadline {
            if state.withLock({ !$0.writing && $0.queue.isEmpty && $0.reporting == 0 }) { return true }
            var pause = timespec(tv_sec: 0, tv_nsec: 5_000_000)
            nanosleep(&pause, nil)
        }
        return false
    }
}
