import ChatCore
import Dispatch
import ServerRuntime
import Synchronization

/// A `ChatStore` in memory, for unit tests of the services and the message writer: the same
/// rules as the PostgreSQL store (case-insensitive unique email, messages in the order
/// stored, a message to an unknown receiver left out). Test support: no executable links it.
public final class InMemoryChatStore: ChatStore {
    private struct State {
        var users: [UserCredentials] = []
        var messages: [ChatMessage] = []
        /// The sequence of the last message stored or added.
        var lastSeq: Int64 = 0
        /// Read watermarks by "user peer".
        var readSeq: [String: Int64] = [:]
        /// The place of the last receipt of each conversation, by "user peer" (both sides).
        var receiptSeq: [String: Int64] = [:]
        var lastSeen: [String: String] = [:]
        var blocks: [(blocker: String, blocked: String)] = []
        var available = true
        var holdingWrites = false
        /// Batches held while `holdingWrites`, stored on `releaseWrites()`.
        var heldWrites: [@Sendable () -> Void] = []
        var batchSizes: [Int] = []
        var readBatchSizes: [Int] = []
        /// Where batch completions run; nil: at once, on the caller's thread.
        var completionQueue: DispatchQueue?
    }

    private let state = Locked(State())
    private let makeID: @Sendable () -> String
    /// The `created_at` every stored message gets.
    public let createdAt = "2026-01-16T17:04:58.123Z"

    public init(makeID: @escaping @Sendable () -> String) {
        self.makeID = makeID
    }

    public func setAvailable(_ available: Bool) { state.withLock { $0.available = available } }

    /// Adds a message as stored; one without a sequence gets the next.
    public func addMessage(_ message: ChatMessage) {
        state.withLock { state in
            let seq = message.seq ?? state.lastSeq + 1
            state.lastSeq = max(state.lastSeq, seq)
            state.messages.append(ChatMessage(id: message.id, senderID: message.senderID, receiverID: message.receiverID,
                                              content: message.content, createdAt: message.createdAt, seq: seq, clientID: message.clientID))
        }
    }

    public func addUser(id: String, email: String, username: String? = nil) {
        state.withLock { $0.users.append(UserCredentials(user: User(id: id, email: email, username: username), passwordHash: "")) }
    }

    /// Every message stored so far, in order.
    public var messages: [ChatMessage] { state.withLock { $0.messages } }

    /// The size of each batch `markRead` was given, in order.
    public var readBatchSizes: [Int] { state.withLock { $0.readBatchSizes } }

    /// The size of each batch of messages `write` was given, in order.
    public var batchSizes: [Int] { state.withLock { $0.batchSizes } }

    /// From now on a batch waits (its completion not called) until `releaseWrites()`, as if
    /// the database were slow.
    public func holdWrites() { state.withLock { $0.holdingWrites = true } }

    /// Stores the held batches in order and stops holding.
    public func releaseWrites() {
        let held = state.withLock { state in
            state.holdingWrites = false
            defer { state.heldWrites = [] }
            return state.heldWrites
        }
        for write in held { write() }
    }

    /// From now on a batch is stored and completed later on `queue`, as a database's answer
    /// comes on another thread; until then (the default) at once, on the caller's thread.
    public func completeAsynchronously(on queue: DispatchQueue) { state.withLock { $0.completionQueue = queue } }

    /// How many batches wait for `releaseWrites()`.
    public var heldBatchCount: Int { state.withLock { $0.heldWrites.count } }

    public func createUser(username: String, email: String, passwordHash: String,
                           completion: @escaping @Sendable (Result<User, StoreError>) -> Void) {
        let id = makeID()
        completion(state.withLock { state in
            guard state.available else { return .failure(.unavailable) }
            if state.users.contains(where: { $0.user.email.lowercased() == email.lowercased() }) { return .failure(.duplicateEmail) }
            let user = User(id: id, email: email, username: username)
            state.users.append(UserCredentials(user: user, passwordHash: passwordHash))
            return .success(user)
        })
    }

    public func credentials(forEmail email: String, completion: @escaping @Sendable (Result<UserCredentials?, StoreError>) -> Void) {
        completion(state.withLock { state in
            guard state.available else { return .failure(.unavailable) }
            let matches = state.users.filter { $0.user.email.lowercased() == email.lowercased() }
            return .success(matches.first(where: { $0.user.email == email }) ?? matches.first)
        })
    }

    public func user(withEmail email: String, completion: @escaping @Sendable (Result<User?, StoreError>) -> Void) {
        credentials(forEmail: email) { completion($0.map { $0?.user }) }
    }

    public func credentials(ofUser userID: String, completion: @escaping @Sendable (Result<UserCredentials?, StoreError>) -> Void) {
        completion(state.withLock { state in
            guard state.available else { return .failure(.unavailable) }
            return .success(state.users.first { $0.user.id == userID })
        })
    }

    public func tokenGeneration(of userID: String, completion: @escaping @Sendable (Result<Int64?, StoreError>) -> Void) {
        credentials(ofUser: userID) { completion($0.map { $0?.tokenGeneration }) }
    }

    public func revokeTokens(of userID: String, newPasswordHash: String?, completion: @escaping @Sendable (Result<Int64?, StoreError>) -> Void) {
        completion(state.withLock { state in
            guard state.available else { return .failure(.unavailable) }
            guard let index = state.users.firstIndex(where: { $0.user.id == userID }) else { return .success(nil) }
            let old = state.users[index]
            state.users[index] = UserCredentials(user: old.user, passwordHash: newPasswordHash ?? old.passwordHash, tokenGeneration: old.tokenGeneration + 1)
            return .success(old.tokenGeneration + 1)
        })
    }

    public func history(between userID: String, and otherID: String, page: HistoryPage,
                        completion: @escaping @Sendable (Result<[ChatMessage], StoreError>) -> Void) {
        completion(state.withLock { state in
            guard state.available else { return .failure(.unavailable) }
            var conversation = state.messages.filter {
                ($0.senderID == userID && $0.receiverID == otherID) || ($0.senderID == otherID && $0.receiverID == userID)
            }
            // Bounds by id are positions in the conversation (the order stored is the sequence
            // order); a cursor bounds by sequence.
            for (bound, name, keepBefore) in [(page.before, "before", true), (page.after, "after", false)] {
                switch bound {
                case nil:
                    continue
                case .message(let id)?:
                    guard let position = conversation.firstIndex(where: { $0.id == id }) else {
                        return .failure(.invalidReference("\(name) must be the id of a message in this conversation"))
                    }
                    conversation = keepBefore ? Array(conversation[..<position]) : Array(conversation[(position + 1)...])
                case .position(let seq)?:
                    conversation = conversation.filter { keepBefore ? ($0.seq ?? 0) < seq : ($0.seq ?? 0) > seq }
                }
            }
            if page.newestFirst { conversation.reverse() }
            return .success(Array(conversation.dropFirst(page.offset).prefix(page.limit)))
        })
    }

    private func insert(_ messages: [NewMessage], completion: @escaping @Sendable (Result<[InsertedMessage], StoreError>) -> Void) {
        let write: @Sendable () -> Void = { [self] in
            completion(state.withLock { state in
                state.batchSizes.append(messages.count)
                guard state.available else { return .failure(.unavailable) }
                let users = Set(state.users.map(\.user.id))
                return .success(messages.map { message in
                    if let clientID = message.clientID,
                       let original = state.messages.first(where: { $0.senderID == message.senderID && $0.clientID == clientID }) {
                        return .repeatOf(StoredMessage(id: original.id, senderID: message.senderID, receiverID: original.receiverID ?? "",
                                                       content: original.content ?? "", createdAt: original.createdAt ?? "",
                                                       seq: original.seq ?? 0, clientID: clientID))
                    }
                    guard users.contains(message.receiverID) else { return .unknownReceiver }
                    state.lastSeq += 1
                    state.messages.append(ChatMessage(id: message.id, senderID: message.senderID, receiverID: message.receiverID,
                                                      content: message.content, createdAt: createdAt, seq: state.lastSeq,
                                                      clientID: message.clientID))
                    return .stored(seq: state.lastSeq, createdAt: createdAt)
                })
            })
        }
        let (held, queue) = state.withLock { state in
            if state.holdingWrites { state.heldWrites.append(write) }
            return (state.holdingWrites, state.completionQueue)
        }
        if held { return }
        if let queue { queue.async(execute: write) } else { write() }
    }

    public func stream(of userID: String, after: Int64, limit: Int, completion: @escaping @Sendable (Result<StreamPage, StoreError>) -> Void) {
        completion(state.withLock { state in
            guard state.available else { return .failure(.unavailable) }
            let mine = state.messages.filter { ($0.senderID == userID || $0.receiverID == userID) && ($0.seq ?? 0) > after }
            let receipts = state.receiptSeq.compactMap { key, position -> ReceiptState? in
                let users = key.split(separator: " ").map(String.init)
                guard users[0] == userID, position > after else { return nil }
                return ReceiptState(peerID: users[1], readSeq: state.readSeq["\(userID) \(users[1])"] ?? 0,
                                    peerReadSeq: state.readSeq["\(users[1]) \(userID)"] ?? 0, position: position)
            }.sorted { $0.position < $1.position }
            return .success(StreamPage(messages: Array(mine.sorted { ($0.seq ?? 0) < ($1.seq ?? 0) }.prefix(limit)), receipts: Array(receipts.prefix(limit)),
                                       head: state.lastSeq))
        })
    }

    public func conversations(of userID: String, before: (seq: Int64, peerID: String)?, limit: Int,
                              completion: @escaping @Sendable (Result<[Conversation], StoreError>) -> Void) {
        completion(state.withLock { state in
            guard state.available else { return .failure(.unavailable) }
            var last: [String: ChatMessage] = [:]
            for message in state.messages {
                guard let sender = message.senderID, let receiver = message.receiverID, sender == userID || receiver == userID else { continue }
                last[sender == userID ? receiver : sender] = message
            }
            var found = last.map { peer, message -> Conversation in
                let read = state.readSeq["\(userID) \(peer)"] ?? 0
                let unread = peer == userID ? 0 : state.messages.filter { $0.senderID == peer && $0.receiverID == userID && ($0.seq ?? 0) > read }.count
                let user = state.users.first { $0.user.id == peer }?.user ?? User(id: peer, email: "", username: nil)
                return Conversation(peer: user, lastMessage: message, lastSeq: message.seq ?? 0, readSeq: read,
                                    peerReadSeq: state.readSeq["\(peer) \(userID)"] ?? 0, unread: min(unread, Conversation.maxUnread))
            }
            found.sort { ($0.lastSeq, $0.peer.id) > ($1.lastSeq, $1.peer.id) }
            if let before { found = found.filter { ($0.lastSeq, $0.peer.id) < (before.seq, before.peerID) } }
            return .success(Array(found.prefix(limit)))
        })
    }

    public func write(_ messages: [NewMessage], reads: [ReadRequest], completion: @escaping @Sendable (Result<StoreWrite, StoreError>) -> Void) {
        let insert: (@escaping @Sendable (Result<[InsertedMessage], StoreError>) -> Void) -> Void = { [self] done in
            messages.isEmpty ? done(.success([])) : self.insert(messages, completion: done)
        }
        insert { [self] result in
            completion(result.flatMap { inserted in
                state.withLock { state in
                    if !reads.isEmpty { state.readBatchSizes.append(reads.count) }
                    guard state.available else { return .failure(.unavailable) }
                    let reads = reads.map { Self.markRead($0, in: &state) }
                    // Its places: one per message stored, one per receipt that moved (nothing
                    // else takes places between them here).
                    let taken = inserted.filter { if case .stored = $0 { true } else { false } }.count
                        + reads.filter { if case .success(let mark?) = $0 { mark.receiptSeq != nil } else { false } }.count
                    return .success(StoreWrite(messages: inserted, reads: reads, span: StreamSpan(after: state.lastSeq - Int64(taken), through: state.lastSeq)))
                }
            })
        }
    }

    public func readStream(_ span: StreamSpan, limit: Int, completion: @escaping @Sendable (Result<StreamRange, StoreError>) -> Void) {
        completion(state.withLock { state in
            guard state.available else { return .failure(.unavailable) }
            let end = min(span.through, state.lastSeq)
            var messages = state.messages.filter { ($0.seq ?? 0) > span.after && ($0.seq ?? 0) <= end }.sorted { ($0.seq ?? 0) < ($1.seq ?? 0) }
            var through = end
            if messages.count > limit {
                messages = Array(messages.prefix(limit))
                through = messages.last?.seq ?? end
            }
            let receipts = state.receiptSeq.compactMap { key, position -> StreamRange.Receipt? in
                let users = key.split(separator: " ").map(String.init)
                guard position > span.after, position <= through else { return nil }
                return StreamRange.Receipt(userID: users[0], state: ReceiptState(peerID: users[1], readSeq: state.readSeq["\(users[0]) \(users[1])"] ?? 0,
                                                                                  peerReadSeq: state.readSeq["\(users[1]) \(users[0])"] ?? 0, position: position))
            }.sorted { ($0.state.position, $0.userID) < ($1.state.position, $1.userID) }
            return .success(StreamRange(messages: messages.map { message in
                StoredMessage(id: message.id, senderID: message.senderID ?? "", receiverID: message.receiverID ?? "", content: message.content ?? "",
                              createdAt: message.createdAt ?? "", seq: message.seq ?? 0, clientID: message.clientID)
            }, receipts: receipts, through: max(span.after, through)))
        })
    }

    public func committedHead(completion: @escaping @Sendable (Result<Int64, StoreError>) -> Void) {
        completion(state.withLock { $0.available ? .success($0.lastSeq) : .failure(.unavailable) })
    }

    /// One request, as if alone: a batch's requests for one conversation each take a place.
    private static func markRead(_ request: ReadRequest, in state: inout State) -> Result<ReadMark?, StoreError> {
        let (userID, peerID) = (request.userID, request.peerID)
        let conversation = state.messages.filter {
            ($0.senderID == userID && $0.receiverID == peerID) || ($0.senderID == peerID && $0.receiverID == userID)
        }
        guard let lastSeq = conversation.last?.seq else { return .success(nil) }
        let target: Int64
        switch request.upTo {
        case .message(let id):
            guard let seq = conversation.first(where: { $0.id == id })?.seq else {
                return .failure(.invalidReference("up_to must be the id of a message in this conversation or a cursor"))
            }
            target = seq
        case .position(let seq):
            target = seq
        }
        guard target <= lastSeq else { return .failure(.invalidReference("up_to is ahead of this conversation's last message")) }
        let key = "\(userID) \(peerID)"
        let before = state.readSeq[key] ?? 0
        let read = max(before, target)
        state.readSeq[key] = read
        var receiptSeq: Int64?
        if read > before {
            state.lastSeq += 1
            receiptSeq = state.lastSeq
            state.receiptSeq[key] = state.lastSeq
            state.receiptSeq["\(peerID) \(userID)"] = state.lastSeq
        }
        let unread = peerID == userID ? 0 : conversation.filter { $0.senderID == peerID && ($0.seq ?? 0) > read }.count
        return .success(ReadMark(readSeq: read, moved: read > before, unread: min(unread, Conversation.maxUnread), receiptSeq: receiptSeq))
    }

    public func peers(of userID: String, completion: @escaping @Sendable (Result<[String], StoreError>) -> Void) {
        completion(state.withLock { state in
            var peers: Set<String> = []
            for message in state.messages {
                if message.senderID == userID, let receiver = message.receiverID, receiver != userID { peers.insert(receiver) }
                if message.receiverID == userID, let sender = message.senderID, sender != userID { peers.insert(sender) }
            }
            return .success(peers.sorted())
        })
    }

    public func recordLastSeen(_ times: [(userID: String, time: String)], completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
        state.withLock { state in for (user, time) in times { state.lastSeen[user] = time } }
        completion(.success(()))
    }

    public func allBlocks(completion: @escaping @Sendable (Result<[(blocker: String, blocked: String)], StoreError>) -> Void) {
        completion(state.withLock { $0.available ? .success($0.blocks) : .failure(.unavailable) })
    }

    public func setBlock(blocker: String, blocked: String, blocking: Bool, completion: @escaping @Sendable (Result<Bool, StoreError>) -> Void) {
        completion(state.withLock { state in
            guard state.available else { return .failure(.unavailable) }
            guard state.users.contains(where: { $0.user.id == blocked }) else { return .success(false) }
            state.blocks.removeAll { $0 == (blocker, blocked) }
            if blocking { state.blocks.append((blocker, blocked)) }
            return .success(true)
        })
    }

    public func blockedUsers(of blocker: String, completion: @escaping @Sendable (Result<[(user: User, since: String)], StoreError>) -> Void) {
        completion(state.withLock { state in
            guard state.available else { return .failure(.unavailable) }
            return .success(state.blocks.filter { $0.blocker == blocker }.compactMap { block in
                state.users.first { $0.user.id == block.blocked }.map { ($0.user, createdAt) }
            })
        })
    }

    public func lastSeen(of userID: String, completion: @escaping @Sendable (Result<String??, StoreError>) -> Void) {
        completion(state.withLock { state in
            guard state.users.contains(where: { $0.user.id == userID }) else { return .success(nil) }
            return .success(.some(state.lastSeen[userID]))
        })
    }

    public func conversationExists(between userID: String, and otherID: String, completion: @escaping @Sendable (Result<Bool, StoreError>) -> Void) {
        completion(state.withLock { state in
            guard state.available else { return .failure(.unavailable) }
            return .success(state.messages.contains {
                ($0.senderID == userID && $0.receiverID == otherID) || ($0.senderID == otherID && $0.receiverID == userID)
            })
        })
    }

    public func searchUsers(_ search: UserSearch, completion: @escaping @Sendable (Result<[User], StoreError>) -> Void) {
        completion(state.withLock { state in
            guard state.available else { return .failure(.unavailable) }
            let prefix = search.prefix.lowercased()
            // Byte order, as the "C" collation: compared as Latin-1 strings of the UTF-8 bytes.
            func key(_ user: User) -> String {
                String((search.phase == 0 ? user.username ?? "" : user.email).lowercased().utf8.map { Character(Unicode.Scalar($0)) }) + "\u{0}" + user.id
            }
            var found = state.users.map(\.user).filter { user in
                let byUsername = (user.username ?? "").lowercased().hasPrefix(prefix)
                return search.phase == 0 ? user.username != nil && byUsername : user.email.lowercased().hasPrefix(prefix) && !byUsername
            }
            found.sort { key($0).unicodeScalars.lexicographicallyPrecedes(key($1).unicodeScalars) }
            if let afterID = search.afterID {
                guard let after = state.users.first(where: { $0.user.id == afterID })?.user else {
                    return .failure(.invalidReference("after must be the next of a previous page"))
                }
                found = found.filter { key(after).unicodeScalars.lexicographicallyPrecedes(key($0).unicodeScalars) }
            }
            return .success(Array(found.prefix(search.limit)))
        })
    }

    public func checkHealth(completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
        completion(state.withLock { $0.available } ? .success(()) : .failure(.unavailable))
    }
}
