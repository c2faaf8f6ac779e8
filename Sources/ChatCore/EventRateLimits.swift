import ServerRuntime
import Synchronization

/// Per-user limits on a user's sockets: how many may be connected at once, and what they send,
/// across all of them (a script cannot multiply its allowance by opening more): one token
/// bucket per kind of event, shared by the user's sockets for as long as one is connected and
/// until the buckets have refilled after.
public final class EventRateLimits: Sendable {
    public enum Kind: Int, Sendable, CaseIterable {
        case message, typing, receipt, other

        /// `send_message`, `typing`, `mark_read`; anything else (`sync`, unknown events) is other.
        public init(event: String) {
            switch event {
            case "send_message": self = .message
            case "typing": self = .typing
            case "mark_read": self = .receipt
            default: self = .other
            }
        }
    }

    public struct Limit: Sendable, Equatable {
        public var burst: Int
        public var perSecond: Double

        public init(burst: Int, perSecond: Double) {
            self.burst = burst
            self.perSecond = perSecond
        }

        /// A burst of 0 turns the limit off.
        public var isOff: Bool { burst == 0 }
    }

    public struct Settings: Sendable, Equatable {
        /// A burst of 1,000 as fast as acks come back passes (clients and tests send such
        /// bursts); a sustained flood does not: 50 a second is far beyond a person's typing.
        public var messages = Limit(burst: 1_000, perSecond: 50)
        public var typing = Limit(burst: 8, perSecond: 4)
        public var receipts = Limit(burst: 100, perSecond: 20)
        public var other = Limit(burst: 100, perSecond: 20)
        /// A socket refused this many events with no pause (refilled at a tenth of it per
        /// second) is disconnected: a client that does not slow down when told is a script.
        public var refusalsBeforeDisconnect = 100
        /// Sockets one user may have connected at once (0: no cap): phones, laptops and tabs.
        public var socketsPerUser = 20

        public init() {}

        public subscript(kind: Kind) -> Limit {
            get { [messages, typing, receipts, other][kind.rawValue] }
            set {
                switch kind {
                case .message: messages = newValue
                case .typing: typing = newValue
                case .receipt: receipts = newValue
                case .other: other = newValue
                }
            }
        }
    }

    /// One user's buckets, held by each of their sockets.
    public final class User: Sendable {
        fileprivate let buckets: Locked<[TokenBucket]>
        fileprivate let settings: Settings

        fileprivate init(settings: Settings, now: Int64) {
            self.settings = settings
            buckets = Locked(Kind.allCases.map { TokenBucket(burst: settings[$0].burst, perSecond: settings[$0].perSecond, now: now) })
        }

        /// Admits one event of `kind`: nil, or the milliseconds until one would be admitted.
        public func admit(_ kind: Kind, now: Int64) -> Int64? {
            guard !settings[kind].isOff else { return nil }
            return buckets.withLock { $0[kind.rawValue].take(now: now) }
        }

        fileprivate func isFull(at now: Int64) -> Bool {
            buckets.withLock { $0.allSatisfy { $0.isFull(at: now) } }
        }
    }

    public let settings: Settings
    private let users = Locked<(entries: [String: (user: User, sockets: Int)], lastSweep: Int64)>(([:], 0))
    private let clock: @Sendable () -> Int64

    /// `clock` gives milliseconds (monotonic; tests pass their own).
    public init(settings: Settings = Settings(), clock: @escaping @Sendable () -> Int64 = { MonotonicClock.milliseconds() }) {
        self.settings = settings
        self.clock = clock
    }

    /// Counts a socket of `userID` in and gives the user's buckets (`release` when it goes);
    /// nil when the user already has `socketsPerUser` connected.
    public func connect(userID: String) -> User? {
        let now = clock()
        return users.withLock { state in
            sweep(&state, now: now)
            let sockets = state.entries[userID]?.sockets ?? 0
            guard settings.socketsPerUser == 0 || sockets < settings.socketsPerUser else { return nil }
            let user = state.entries[userID]?.user ?? User(settings: settings, now: now)
            state.entries[userID] = (user, sockets + 1)
            return user
        }
    }

    /// The buckets of a user with a socket connected.
    public func buckets(of userID: String) -> User? {
        users.withLock { $0.entries[userID]?.user }
    }

    public func release(userID: String) {
        users.withLock { state in
            guard let entry = state.entries[userID] else { return }
            state.entries[userID] = (entry.user, max(0, entry.sockets - 1))
        }
    }

    /// Users with sockets connected, or buckets not yet full again.
    public var trackedUsers: Int { users.withLock { $0.entries.count } }

    /// Once a minute, forgets the users with no socket whose buckets are full again: a
    /// reconnect finds what it left, so leaving and coming back refills nothing early.
    private func sweep(_ state: inout (entries: [String: (user: User, sockets: Int)], lastSweep: Int64), now: Int64) {
        guard now - state.lastSweep >= 60_000 else { return }
        state.lastSweep = now
        state.entries = state.entries.filter { $0.value.sockets > 0 || !$0.value.user.isFull(at: now) }
    }
}
