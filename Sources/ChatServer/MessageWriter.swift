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
/// implicit transaction) writes a whole batch, and every message of it is reported only
/// after that COMMIT. One batch is in flight at a time, so order is kept: per sender, and
/// between the sequence numbers and the order of the reports.
final class MessageWriter: Sendable {
    private struct Pending {
        let id: String
        let senderID: String
        let receiverID: String
        let content: String
        let completion: @Sendable (Result<StoredMessage, MessageWriteError>) -> Void
    }

    private struct State {
        var queue: [Pending] = []
        var writing = false
        /// Off once shutdown begins: a message taken is a message acknowledged before sockets close.
        var accepting = true
    }

    private let pool: PostgresPool
    private let maxBatch: Int
    private let maxQueued: Int
    private let state = Mutex(State())

    init(pool: PostgresPool, maxBatch: Int = 2000, maxQueued: Int = 200_000) {
        self.pool = pool
        self.maxBatch = maxBatch
        self.maxQueued = maxQueued
    }

    /// Queues one message; `completion` runs on the pool's thread after COMMIT (or failure).
    func write(senderID: String, receiverID: String, content: String,
               completion: @escaping @Sendable (Result<StoredMessage, MessageWriteError>) -> Void) {
        let pending = Pending(id: Self.makeUUID(), senderID: senderID, receiverID: receiverID, content: content, completion: completion)
        let batch: [Pending]? = state.withLock { state in
            guard state.accepting, state.queue.count < maxQueued else { return [] }
            state.queue.append(pending)
            return state.writing ? nil : takeBatch(&state)
        }
        if let batch {
            if batch.isEmpty { return completion(.failure(.unavailable)) }
            send(batch)
        }
    }

    private func takeBatch(_ state: inout State) -> [Pending]? {
        guard !state.queue.isEmpty else {
            state.writing = false
            return nil
        }
        state.writing = true
        let count = min(maxBatch, state.queue.count)
        let batch = Array(state.queue.prefix(count))
        state.queue.removeFirst(count)
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
            """, [Self.arrayLiteral(batch.map(\.id)), Self.arrayLiteral(batch.map(\.senderID)),
                  Self.arrayLiteral(batch.map(\.receiverID)), Self.arrayLiteral(batch.map(\.content))])
        pool.submit(statement) { [self] result in
            switch result {
            case .success(let rows):
                var created: [String: String] = [:]
                for row in 0..<rows.count {
                    if let id = rows.value(row, "id") { created[id] = rows.value(row, "created_at").map(Timestamps.fromPostgres) ?? "" }
                }
                for pending in batch {
                    if let createdAt = created[pending.id] {
                        pending.completion(.success(StoredMessage(id: pending.id, senderID: pending.senderID, receiverID: pending.receiverID,
                                                                  content: pending.content, createdAt: createdAt)))
                    } else {
                        pending.completion(.failure(.unknownRecipient))
                    }
                }
            case .failure(let error):
                Log.warning("message batch of \(batch.count) not written: \(error)")
                let failure: MessageWriteError = error.kind == .server ? .failed : .unavailable
                for pending in batch { pending.completion(.failure(failure)) }
            }
            if let next = state.withLock({ takeBatch(&$0) }) { send(next) }
        }
    }

    /// A PostgreSQL array literal: every element quoted, `"` and `\` escaped. Built on UTF-8
    /// bytes: this runs for every message of every batch.
    static func arrayLiteral(_ values: [String]) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(values.reduce(2) { $0 + $1.utf8.count + 3 })
        for index in values.indices {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            let utf8 = values[index].utf8
            if utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                for byte in utf8 {
                    if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                    out.append(byte)
                }
            } else {
                out.append(contentsOf: utf8)  // ids and most texts: one copy
            }
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// At shutdown: refuses new messages from now on, then waits (on the calling thread) until
    /// nothing is queued or being written, or the time-out passes — so every message stored is
    /// also acknowledged before the sockets close.
    func waitUntilIdle(timeoutMilliseconds: Int64) -> Bool {
        state.withLock { $0.accepting = false }
        let deadline = monotonicMilliseconds() + timeoutMilliseconds
        while monotonicMilliseconds() < deadline {
            if state.withLock({ !$0.writing && $0.queue.isEmpty }) { return true }
            var pause = timespec(tv_sec: 0, tv_nsec: 5_000_000)
            nanosleep(&pause, nil)
        }
        return false
    }

    /// A random (version 4) UUID.
    static func makeUUID() -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        _ = getrandom(&bytes, 16, 0)
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for (i, byte) in bytes.enumerated() {
            if i == 4 || i == 6 || i == 8 || i == 10 { out.append(UInt8(ascii: "-")) }
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
