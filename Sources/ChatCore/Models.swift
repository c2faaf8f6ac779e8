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

    public init(user: User, passwordHash: String) {
        self.user = user
        self.passwordHash = passwordHash
    }
}

/// A stored message. `createdAt` is already in the wire form, ISO-8601 UTC with milliseconds.
public struct ChatMessage: Sendable, Equatable {
    public let id: String
    public let senderID: String?
    public let receiverID: String?
    public let content: String?
    public let createdAt: String?

    public init(id: String, senderID: String?, receiverID: String?, content: String?, createdAt: String?) {
        self.id = id
        self.senderID = senderID
        self.receiverID = receiverID
        self.content = content
        self.createdAt = createdAt
    }
}

/// A message the writer has given an id and hands to the store.
public struct NewMessage: Sendable, Equatable {
    public let id: String
    public let senderID: String
    public let receiverID: String
    public let content: String

    public init(id: String, senderID: String, receiverID: String, content: String) {
        self.id = id
        self.senderID = senderID
        self.receiverID = receiverID
        self.content = content
    }
}

/// A message as the writer reports it, once committed. `createdAt` is in the wire form.
public struct StoredMessage: Sendable, Equatable {
    public let id: String
    public let senderID: String
    public let receiverID: String
    public let content: String
    public let createdAt: String

    public init(id: String, senderID: String, receiverID: String, content: String, createdAt: String) {
        self.id = id
        self.senderID = senderID
        self.receiverID = receiverID
        self.content = content
        self.createdAt = createdAt
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
    /// Only messages before this message of the conversation (lower sequence).
    public var beforeID: String?
    /// Only messages after this message of the conversation.
    public var afterID: String?
    /// Newest first, rather than oldest first.
    public var newestFirst: Bool

    public init(limit: Int, offset: Int = 0, beforeID: String? = nil, afterID: String? = nil, newestFirst: Bool = false) {
        self.limit = limit
        self.offset = offset
        self.beforeID = beforeID
        self.afterID = afterID
        self.newestFirst = newestFirst
    }
}

/// What the chat needs from storage. Completions may run on any thread.
public protocol ChatStore: Sendable {
    func createUser(username: String, email: String, passwordHash: String,
                    completion: @escaping @Sendable (Result<User, StoreError>) -> Void)
    /// The user whose email matches case-insensitively, preferring an exact match.
    func credentials(forEmail email: String, completion: @escaping @Sendable (Result<UserCredentials?, StoreError>) -> Void)
    func user(withEmail email: String, completion: @escaping @Sendable (Result<User?, StoreError>) -> Void)
    /// Messages between the two users, both directions, as `page` says. A bound that is not a
    /// message of this conversation fails with `invalidReference`.
    func history(between userID: String, and otherID: String, page: HistoryPage,
                 completion: @escaping @Sendable (Result<[ChatMessage], StoreError>) -> Void)
    /// Stores a batch of messages in one transaction, in the order given. The result holds, for
    /// each message in that order, its `created_at` in the wire form, or nil when it was left
    /// out because its receiver is no user. A failure means none was stored.
    func insertMessages(_ messages: [NewMessage], completion: @escaping @Sendable (Result<[String?], StoreError>) -> Void)
    /// Succeeds while storage answers.
    func checkHealth(completion: @escaping @Sendable (Result<Void, StoreError>) -> Void)
}
