import Synchronization

/// A user's conversations and read watermarks, independent of HTTP and Socket.IO.
public final class ConversationService: Sendable {
    public static let defaultLimit = 20
    public static let maxLimit = 100
    /// Receipts written in one statement at most; more wait for the next turn.
    public static let maxReceiptBatch = 500

    private let store: any ChatStore
    private let sequencer: any StreamSequencer
    /// Receipts waiting for their turn between message batches, and whether one is asked for.
    private let pending = Mutex<(requests: [(ReadRequest, @Sendable (Result<ReadMark?, StoreError>) -> Void)], turnAsked: Bool)>(([], false))

    /// `sequencer` hands out places in the stream (the message writer): receipts take theirs
    /// between its batches.
    public init(store: any ChatStore, sequencer: any StreamSequencer) {
        self.store = store
        self.sequencer = sequencer
    }

    /// A page of conversations and where the next one starts (nil: no more).
    public struct Page: Sendable, Equatable {
        public let conversations: [Conversation]
        public let next: String?
    }

    /// `userID`'s conversations, the one with the newest message first. `after` is a page's
    /// `next` (`<cursor of its last message>.<peer id>`); `limit` 1…100, default 20.
    public func list(userID: String, limit: Int?, after: String?, completion: @escaping @Sendable (Result<Page, ServiceError>) -> Void) {
        let limit = min(max(limit ?? Self.defaultLimit, 1), Self.maxLimit)
        var before: (seq: Int64, peerID: String)?
        if let after {
            let parts = after.split(separator: ".", maxSplits: 1)
            guard parts.count == 2, let seq = StreamCursor.decode(String(parts[0])), let peer = Validation.uuid(parts[1]) else {
                return completion(.failure(.invalidInput("after must be the next of a previous page")))
            }
            before = (seq, peer)
        }
        store.conversations(of: userID, before: before, limit: limit) { result in
            completion(result.mapError(ServiceError.init).map { conversations in
                let next = conversations.count == limit ? conversations.last.map { "\(StreamCursor.encode($0.lastSeq)).\($0.peer.id)" } : nil
                return Page(conversations: conversations, next: next)
            })
        }
    }

    /// Marks the conversation of `userID` with `peer` read up to `upTo` (a message id of the
    /// conversation, or a cursor no later than its last message). The watermark only moves
    /// forward: an earlier bound leaves it where it is (`moved` false).
    public func markRead(userID: String, peer: String?, upTo: String?, completion: @escaping @Sendable (Result<ReadMark, ServiceError>) -> Void) {
        guard let peer = peer.flatMap(Validation.uuid) else {
            return completion(.failure(.invalidInput("with must be a user id (UUID)")))
        }
        let bound: HistoryBound
        if let id = upTo.flatMap(Validation.uuid) {
            bound = .message(id: id)
        } else if let seq = upTo.flatMap(StreamCursor.decode) {
            bound = .position(seq)
        } else {
            return completion(.failure(.invalidInput("up_to must be the id of a message in this conversation or a cursor")))
        }
        write(ReadRequest(userID: userID, peerID: peer, upTo: bound)) { result in
            switch result {
            case .failure(let error): completion(.failure(ServiceError(error)))
            case .success(nil): completion(.failure(ServiceError(.notFound, "no conversation with that user")))
            case .success(let mark?): completion(.success(mark))
            }
        }
    }

    /// Queues a receipt for the next turn between message batches: every receipt waiting
    /// then goes in one write (at most `maxReceiptBatch`), and each answer is given in order
    /// with the messages' reports, after the batch before it was delivered.
    private func write(_ request: ReadRequest, completion: @escaping @Sendable (Result<ReadMark?, StoreError>) -> Void) {
        let askTurn = pending.withLock { pending in
            pending.requests.append((request, completion))
            defer { pending.turnAsked = true }
            return !pending.turnAsked
        }
        if askTurn { askForTurn() }
    }

    private func askForTurn() {
        let accepted = sequencer.runBetweenBatches { [self] finished in
            let batch = pending.withLock { pending in
                let batch = Array(pending.requests.prefix(Self.maxReceiptBatch))
                pending.requests.removeFirst(batch.count)
                return batch
            }
            store.markRead(batch.map(\.0)) { [self] result in
                // Whoever came meanwhile goes in the next turn, asked for before this one ends.
                let again = pending.withLock { pending in
                    pending.turnAsked = !pending.requests.isEmpty
                    return pending.turnAsked
                }
                if again { askForTurn() }
                finished {
                    for (index, (_, completion)) in batch.enumerated() {
                        switch result {
                        case .success(let results) where results.count == batch.count: completion(results[index])
                        case .success: completion(.failure(.failed("markRead answered a different number of results")))
                        case .failure(let error): completion(.failure(error))
                        }
                    }
                }
            }
        }
        guard !accepted else { return }
        // Stopping: nothing more is written.
        let refused = pending.withLock { pending in
            defer { pending = ([], false) }
            return pending.requests
        }
        for (_, completion) in refused { completion(.failure(.unavailable)) }
    }
}
