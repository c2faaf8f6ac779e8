/// A user as other users and clients see it.
public struct User: Sendable, Equatable {
    public let id: String
    public let email: String
    public let username: String?

    public init(id: String, email: String, username: String?) {
        self.id = id
        self.email = email
        self.username = username
    }
}

/// A user with the bcrypt hash that login compares against.
public struct UserCredentials: Sendable, Equatable {
    public let user: User
    public let passwordHash: String
    /// Tokens with a lower `gen` claim are revoked.
    public let tokenGeneration: Int64

    public init(user: User, passwordHash: String, tokenGeneration: Int64 = 0) {
        self.user = user
        self.passwordHash = passwordHash
        self.tokenGeneration = tokenGeneration
    }
}

/// A stored message. `createdAt` is already in the wire form, ISO-8601 UTC with milliseconds.
/// `seq` is its place in the order of all messages (nil only where a store does not say).
public struct ChatMessage: Sendable, Equatable {
    public let id: String
    public let senderID: String?
    public let receiverID: String?
    public let content: String?
    public let createdAt: String?
    public let seq: Int64?
    /// The UUID the sending client gave it (idempotent send), if any.
    public let clientID: String?

    public init(id: String, senderID: String?, receiverID: String?, content: String?, createdAt: String?,
                seq: Int64? = nil, clientID: String? = nil) {
        self.id = id
        self.senderID = senderID
        self.receiverID = receiverID
        self.content = content
        self.createdAt = createdAt
        self.seq = seq
        self.clientID = clientID
    }
}

/// A message the writer has given an id and hands to the store.
public struct NewMessage: Sendable, Equatable {
    public let id: String
    public let senderID: String
    public let receiverID: String
    public let content: String
    /// The sender's UUID for it: a second message with the same one stores nothing.
    public let clientID: String?

    public init(id: String, senderID: String, receiverID: String, content: String, clientID: String? = nil) {
        self.id = id
        self.senderID = senderID
        self.receiverID = receiverID
        self.content = content
        self.clientID = clientID
    }
}

/// A message as the writer reports it, once committed. `createdAt` is in the wire form.
public struct StoredMessage: Sendable, Equatable {
    public let id: String
    public let senderID: String
    public let receiverID: String
    public let content: String
    public let createdAt: String
    /// Its place in every stream it belongs to (`StreamCursor` makes the client's form).
    public let seq: Int64
    public let clientID: String?

    public init(id: String, senderID: String, receiverID: String, content: String, createdAt: String, seq: Int64, clientID: String? = nil) {
        self.id = id
        self.senderID = senderID
        self.receiverID = receiverID
        self.content = content
        self.createdAt = createdAt
        self.seq = seq
        self.clientID = clientID
    }
}

/// What the store did with one message of a batch.
public enum InsertedMessage: Sendable, Equatable {
    /// Stored now, at this sequence and time (wire form).
    case stored(seq: Int64, createdAt: String)
    /// Its sender stored a message with the same `client_id` before (or earlier in the batch):
    /// nothing new was stored; this is that message.
    case repeatOf(StoredMessage)
    /// Left out: the receiver is no user.
    case unknownReceiver
    /// Left out as a repeat of a message its sender stored before with the same `client_id`,
    /// which could not be read back (the database went away right after the commit): stored
    /// once, but what it is cannot be said now — the sender is told to try again.
    case repeatNotFound
}

/// A bound of a history page: a message of the conversation, or a place in the stream.
public enum HistoryBound: Sendable, Equatable {
    case message(id: String)
    case position(Int64)
}

/// A run of a user's stream (the messages they received and sent) in sequence order, and the
/// highest sequence committed when it was read: a cursor beyond it is none this server gave.
public struct StreamPage: Sendable, Equatable {
    public let messages: [ChatMessage]
    /// The user's conversations whose receipts moved after the page's start, by `position`.
    public let receipts: [ReceiptState]
    public let head: Int64

    public init(messages: [ChatMessage], receipts: [ReceiptState] = [], head: Int64) {
        self.messages = messages
        self.receipts = receipts
        self.head = head
    }
}

/// The read watermarks of one of a user's conversations, as its last receipt left them: how
/// far the user read the peer's messages, and how far the peer read the user's. `position` is
/// that receipt's place in the stream (a receipt takes a sequence number as a message does).
public struct ReceiptState: Sendable, Equatable {
    public let peerID: String
    public let readSeq: Int64
    public let peerReadSeq: Int64
    public let position: Int64

    public init(peerID: String, readSeq: Int64, peerReadSeq: Int64, position: Int64) {
        self.peerID = peerID
        self.readSeq = readSeq
        self.peerReadSeq = peerReadSeq
        self.position = position
    }
}

/// Why storage could not do what was asked; never carries database text to a client.
public enum StoreError: Error, Sendable, Equatable {
    case duplicateEmail
    /// The database cannot be reached or is overloaded: worth retrying later.
    case unavailable
    /// Anything else; the detail is for the server's log only.
    case failed(String)
    /// The request named something that is not there for this caller (e.g. a history bound
    /// that is no message of the conversation); the text says what, for the client.
    case invalidReference(String)
}

/// Which part of a conversation a history request wants, in sequence order.
public struct HistoryPage: Sendable, Equatable {
    public var limit: Int
    public var offset: Int
    /// Only messages before this bound (lower sequence).
    public var before: HistoryBound?
    /// Only messages after this bound.
    public var after: HistoryBound?
    /// Newest first, rather than oldest first.
    public var newestFirst: Bool

    public init(limit: Int, offset: Int = 0, before: HistoryBound? = nil, after: HistoryBound? = nil, newestFirst: Bool = false) {
        self.limit = limit
        self.offset = offset
        self.before = before
        self.after = after
        self.newestFirst = newestFirst
    }
}

/// Which part of a user search: users whose username (phase 0) or else email (phase 1) starts
/// with `prefix` (both lower-cased by the store), after the user `afterID` of `phase`.
public struct UserSearch: Sendable, Equatable {
    public var prefix: String
    public var phase: Int
    public var afterID: String?
    public var limit: Int

    public init(prefix: String, phase: Int = 0, afterID: String? = nil, limit: Int) {
        self.prefix = prefix
        self.phase = phase
        self.afterID = afterID
        self.limit = limit
    }
}

/// One of a user's conversations: the peer, the last message either way, and how many of the
/// peer's messages the user has not read (at most `Conversation.maxUnread`).
public struct Conversation: Sendable, Equatable {
    public static let maxUnread = 999

    public let peer: User
    public let lastMessage: ChatMessage?
    public let lastSeq: Int64
    public let readSeq: Int64
    /// How far the peer has read the user's messages.
    public let peerReadSeq: Int64
    public let unread: Int

    public init(peer: User, lastMessage: ChatMessage?, lastSeq: Int64, readSeq: Int64, peerReadSeq: Int64 = 0, unread: Int) {
        self.peer = peer
        self.lastMessage = lastMessage
        self.lastSeq = lastSeq
        self.readSeq = readSeq
        self.peerReadSeq = peerReadSeq
        self.unread = unread
    }
}

/// Where a user's read watermark in a conversation stands after a `mark_read`.
public struct ReadMark: Sendable, Equatable {
    /// The watermark: the peer's messages up to this sequence are read.
    public let readSeq: Int64
    /// It moved (false: it was already there or beyond).
    public let moved: Bool
    /// The peer's messages still unread (at most `Conversation.maxUnread`).
    public let unread: Int
    /// The place the receipt took in both users' streams, for the one request of a batch that
    /// announces the move (nil: nothing moved, or another request for the same conversation
    /// in the same batch announces it).
    public let receiptSeq: Int64?

    public init(readSeq: Int64, moved: Bool, unread: Int, receiptSeq: Int64? = nil) {
        self.readSeq = readSeq
        self.moved = moved
        self.unread = unread
        self.receiptSeq = receiptSeq
    }
}

/// What one `ChatStore.write` did: each message's fate and each receipt's, in order, and the
/// places in the sequence it took (nil from a store that does not say).
public struct StoreWrite: Sendable, Equatable {
    public let messages: [InsertedMessage]
    public let reads: [Result<ReadMark?, StoreError>]
    public let span: StreamSpan?

    public init(messages: [InsertedMessage], reads: [Result<ReadMark?, StoreError>], span: StreamSpan? = nil) {
        self.messages = messages
        self.reads = reads
        self.span = span
    }
}

/// The events of a span of the sequence, every user's, as `ChatStore.readStream` found them:
/// what another process wrote, to deliver here.
public struct StreamRange: Sendable, Equatable {
    public struct Receipt: Sendable, Equatable {
        /// Whose conversation row: the receipt as that user's stream has it.
        public let userID: String
        public let state: ReceiptState

        public init(userID: String, state: ReceiptState) {
            self.userID = userID
            self.state = state
        }
    }

    public let messages: [StoredMessage]
    public let receipts: [Receipt]
    /// Through where this covers: the span's end, or less (the last message of a full page,
    /// or the database's committed head when the span was announced beyond it).
    public let through: Int64

    public init(messages: [StoredMessage], receipts: [Receipt], through: Int64) {
        self.messages = messages
        self.receipts = receipts
        self.through = through
    }
}

/// A `mark_read`: `userID` has read `peerID`'s messages up to `upTo`.
public struct ReadRequest: Sendable, Equatable {
    public let userID: String
    public let peerID: String
    public let upTo: HistoryBound

    public init(userID: String, peerID: String, upTo: HistoryBound) {
        self.userID = userID
        self.peerID = peerID
        self.upTo = upTo
    }
}

/// What the chat needs from storage. Completions may run on any thread.
public protocol ChatStore: Sendable {
    func createUser(username: String, email: String, passwordHash: String,
                    completion: @escaping @Sendable (Result<User, StoreError>) -> Void)
    /// The user whose email matches case-insensitively, preferring an exact match.
    func credentials(forEmail email: String, completion: @escaping @Sendable (Result<UserCredentials?, StoreError>) -> Void)
    func user(withEmail email: String, completion: @escaping @Sendable (Result<User?, StoreError>) -> Void)
    /// The credentials of the user with this id (nil: no such user).
    func credentials(ofUser userID: String, completion: @escaping @Sendable (Result<UserCredentials?, StoreError>) -> Void)
    /// The user's token generation (nil: no such user).
    func tokenGeneration(of userID: String, completion: @escaping @Sendable (Result<Int64?, StoreError>) -> Void)
    /// Moves the user's token generation on, revoking every token issued before, and replaces
    /// the password hash when one is given, in one statement: the new generation (nil: no
    /// such user).
    func revokeTokens(of userID: String, newPasswordHash: String?, completion: @escaping @Sendable (Result<Int64?, StoreError>) -> Void)
    /// Messages between the two users, both directions, as `page` says. A bound by id that is
    /// not a message of this conversation fails with `invalidReference`.
    func history(between userID: String, and otherID: String, page: HistoryPage,
                 completion: @escaping @Sendable (Result<[ChatMessage], StoreError>) -> Void)
    /// Stores a batch of messages (possibly none), in the order given, sequence numbers
    /// ascending in that order, and then, in the same transaction, read
    /// receipts: for each, moves the user's read watermark in the conversation with the peer
    /// forward to its bound (a message of the conversation, or a place in the stream no later
    /// than its last message); each conversation moved takes one new place in the sequence,
    /// after the messages' (`ReadMark.receiptSeq`, on the first request of that conversation).
    /// Per receipt: `invalidReference` for a bound that is neither, nil when there is no such
    /// conversation. A failure means nothing was stored. Writes take their places and commit
    /// one after another, whichever process makes them, and each is announced to every
    /// process with its span (see `StreamSequencer`).
    func write(_ messages: [NewMessage], reads: [ReadRequest], completion: @escaping @Sendable (Result<StoreWrite, StoreError>) -> Void)
    /// Every user's messages and receipts in `span` as committed, in place order, at most
    /// `limit` messages (then through the last of them).
    func readStream(_ span: StreamSpan, limit: Int, completion: @escaping @Sendable (Result<StreamRange, StoreError>) -> Void)
    /// The end of the last write committed (0 for none).
    func committedHead(completion: @escaping @Sendable (Result<Int64, StoreError>) -> Void)
    /// The messages `userID` received or sent with a sequence above `after`, ascending, at most
    /// `limit`; their conversations whose last receipt is above `after`, by its place, at most
    /// `limit`; and the highest sequence handed out.
    func stream(of userID: String, after: Int64, limit: Int, completion: @escaping @Sendable (Result<StreamPage, StoreError>) -> Void)
    /// Users of `search.phase` matching its prefix, in that phase's order (lower-cased username,
    /// then id; or lower-cased email, then id, leaving out those the username phase found),
    /// after `search.afterID`, at most `search.limit`. An `afterID` that is no user fails with
    /// `invalidReference`.
    func searchUsers(_ search: UserSearch, completion: @escaping @Sendable (Result<[User], StoreError>) -> Void)
    /// `userID`'s conversations by last message, newest first, those before `before` (a last
    /// sequence and a peer id, as the previous page ended), at most `limit`.
    func conversations(of userID: String, before: (seq: Int64, peerID: String)?, limit: Int,
                       completion: @escaping @Sendable (Result<[Conversation], StoreError>) -> Void)
    /// Everyone `userID` has a conversation with.
    func peers(of userID: String, completion: @escaping @Sendable (Result<[String], StoreError>) -> Void)
    /// Stores when each user was last seen (wire-form timestamps), in one write.
    func recordLastSeen(_ times: [(userID: String, time: String)], completion: @escaping @Sendable (Result<Void, StoreError>) -> Void)
    /// When the user was last seen: nil for no such user, `.some(nil)` for never.
    func lastSeen(of userID: String, completion: @escaping @Sendable (Result<String??, StoreError>) -> Void)
    /// Whether the two users have exchanged a message (either way).
    func conversationExists(between userID: String, and otherID: String, completion: @escaping @Sendable (Result<Bool, StoreError>) -> Void)
    /// Every block: (blocker, blocked) user ids.
    func allBlocks(completion: @escaping @Sendable (Result<[(blocker: String, blocked: String)], StoreError>) -> Void)
    /// Records (or, `blocking` false, removes) that `blocker` blocks `blocked`: false when the
    /// blocked user does not exist.
    func setBlock(blocker: String, blocked: String, blocking: Bool, completion: @escaping @Sendable (Result<Bool, StoreError>) -> Void)
    /// The users `blocker` blocks, oldest block first, with when (wire form).
    func blockedUsers(of blocker: String, completion: @escaping @Sendable (Result<[(user: User, since: String)], StoreError>) -> Void)
    /// Succeeds while storage answers.
    func checkHealth(completion: @escaping @Sendable (Result<Void, StoreError>) -> Void)
}
