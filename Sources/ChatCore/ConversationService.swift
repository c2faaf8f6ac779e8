/// A user's conversations and read watermarks, independent of HTTP and Socket.IO.
public final class ConversationService: Sendable {
    public static let defaultLimit = 20
    public static let maxLimit = 100
    private let store: any ChatStore
    private let receipts: any ReadReceiptWriter

    /// `receipts` writes read receipts (the message writer: they take places in the stream).
    public init(store: any ChatStore, receipts: any ReadReceiptWriter) {
        self.store = store
        self.receipts = receipts
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
        let accepted = receipts.markRead(ReadRequest(userID: userID, peerID: peer, upTo: bound)) { result in
            switch result {
            case .failure(let error): completion(.failure(ServiceError(error)))
            case .success(nil): completion(.failure(ServiceError(.notFound, "no conversation with that user")))
            case .success(let mark?): completion(.success(mark))
            }
        }
        // Stopping, or a backlog of receipts: worth asking again.
        if !accepted { completion(.failure(ServiceError(StoreError.unavailable))) }
    }
}
