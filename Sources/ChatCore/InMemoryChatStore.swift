import Synchronization

/// A `ChatStore` in memory, for unit tests of the services: same rules as the PostgreSQL
/// store (case-insensitive unique email, messages ordered by a sequence).
public final class InMemoryChatStore: ChatStore {
    private struct State {
        var users: [UserCredentials] = []
        var messages: [ChatMessage] = []
        var available = true
    }

    private let state = Mutex(State())
    private let makeID: @Sendable () -> String

    public init(makeID: @escaping @Sendable () -> String) {
        self.makeID = makeID
    }

    public func setAvailable(_ available: Bool) { state.withLock { $0.available = available } }

    public func addMessage(_ message: ChatMessage) { state.withLock { $0.messages.append(message) } }

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

    public func history(between userID: String, and otherID: String, limit: Int, offset: Int,
                        completion: @escaping @Sendable (Result<[ChatMessage], StoreError>) -> Void) {
        completion(state.withLock { state in
            guard state.available else { return .failure(.unavailable) }
            let conversation = state.messages.filter {
                ($0.senderID == userID && $0.receiverID == otherID) || ($0.senderID == otherID && $0.receiverID == userID)
            }
            return .success(Array(conversation.dropFirst(offset).prefix(limit)))
        })
    }

    public func checkHealth(completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
        completion(state.withLock { $0.available } ? .success(()) : .failure(.unavailable))
    }
}
