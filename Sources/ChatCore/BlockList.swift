import Dispatch
import ServerRuntime
import Synchronization

/// Who blocks whom. A blocked user's messages to the blocker are refused (with a neutral
/// error: nothing says they are blocked), the blocker cannot message them either until they
/// unblock, and neither sees the other's typing or presence. Every block is held in memory
/// (a row per pair, few per user who blocks at all), read whole at start-up and kept by this
/// process's changes (and other processes', as they tell it: `apply`), so the check on each
/// message costs no database read.
public final class BlockList: Sendable {
    private struct State {
        var byBlocker: [String: Set<String>] = [:]
        var loaded = false
    }

    private let state = Locked(State())
    private let store: any ChatStore
    /// Told of each change this process stored (to tell other processes).
    private let changed: @Sendable (_ blocker: String, _ blocked: String, _ blocking: Bool) -> Void

    public init(store: any ChatStore, changed: @escaping @Sendable (_ blocker: String, _ blocked: String, _ blocking: Bool) -> Void = { _, _, _ in }) {
        self.store = store
        self.changed = changed
    }

    /// A change stored by another process.
    public func apply(blocker: String, blocked: String, blocking: Bool) {
        state.withLock { state in
            if blocking {
                state.byBlocker[blocker, default: []].insert(blocked)
            } else {
                state.byBlocker[blocker]?.remove(blocked)
                if state.byBlocker[blocker]?.isEmpty == true { state.byBlocker.removeValue(forKey: blocker) }
            }
        }
    }

    /// Reads every block, again every `retryMilliseconds` until the database answers; until
    /// then `isLoaded` is false (and sending is refused: the database is away anyway). Called
    /// again (changes by other processes may have been missed), it replaces what is held.
    public func load(retryMilliseconds: Int = 1_000) {
        store.allBlocks { [self] result in
            switch result {
            case .success(let blocks):
                var byBlocker: [String: Set<String>] = [:]
                for (blocker, blocked) in blocks { byBlocker[blocker, default: []].insert(blocked) }
                state.withLock { state in
                    state.byBlocker = byBlocker
                    state.loaded = true
                }
            case .failure:
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(retryMilliseconds)) { self.load(retryMilliseconds: retryMilliseconds) }
            }
        }
    }

    public var isLoaded: Bool { state.withLock { $0.loaded } }

    public func isBlocked(_ blocked: String, by blocker: String) -> Bool {
        state.withLock { $0.byBlocker[blocker]?.contains(blocked) ?? false }
    }

    /// Either of the two blocks the other: they see nothing of each other.
    public func separates(_ one: String, _ other: String) -> Bool {
        state.withLock { state in
            guard !state.byBlocker.isEmpty else { return false }
            return state.byBlocker[one]?.contains(other) ?? false || state.byBlocker[other]?.contains(one) ?? false
        }
    }

    /// `blocker` blocks (or, `blocking` false, unblocks) `target`: stored, then in effect.
    public func set(blocker: String, target: String?, blocking: Bool, completion: @escaping @Sendable (Result<Void, ServiceError>) -> Void) {
        guard let target = target.flatMap(Validation.uuid) else { return completion(.failure(.invalidInput("the user id must be a UUID"))) }
        guard target != blocker else { return completion(.failure(.invalidInput("you cannot block yourself"))) }
        // Not before every block is read: that read could otherwise undo this change.
        guard isLoaded else { return completion(.failure(.unavailable)) }
        store.setBlock(blocker: blocker, blocked: target, blocking: blocking) { [self] result in
            switch result {
            case .failure(let error): completion(.failure(ServiceError(error)))
            case .success(false): completion(.failure(ServiceError(.notFound, "User not found")))
            case .success(true):
                apply(blocker: blocker, blocked: target, blocking: blocking)
                changed(blocker, target, blocking)
                completion(.success(()))
            }
        }
    }

    /// The users `blocker` blocks, with since when.
    public func list(blocker: String, completion: @escaping @Sendable (Result<[(user: User, since: String)], ServiceError>) -> Void) {
        store.blockedUsers(of: blocker) { completion($0.mapError(ServiceError.init)) }
    }
}
