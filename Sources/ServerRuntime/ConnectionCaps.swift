import Synchronization

/// Caps on the connections of one client address: how many may be open at once, and how many
/// new ones a second (a token bucket). `admit` asks before a connection is made, `opened`
/// counts it once it exists, `release` when it ends: a connection admitted but never made
/// (the client went before its handshake was answered) counts nothing.
public final class ConnectionCaps: Sendable {
    public struct Settings: Sendable, Equatable {
        /// Open at once per address (many people can share one, behind a NAT).
        public var openPerAddress = 1_000
        /// New connections per address and second, after a burst of `newBurst`.
        public var newPerSecond = 20
        public var newBurst = 200

        public init() {}
    }

    /// Why a connection was not admitted, and when to try again.
    public struct Refusal: Error, Sendable, Equatable {
        public let message: String
        public let retryAfterSeconds: Int

        public init(message: String, retryAfterSeconds: Int) {
            self.message = message
            self.retryAfterSeconds = retryAfterSeconds
        }
    }

    private struct Entry {
        var open = 0
        var bucket: TokenBucket
    }

    public let settings: Settings
    private let state = Locked<(entries: [String: Entry], lastSweep: Int64)>(([:], 0))
    private let clock: @Sendable () -> Int64

    /// `clock` gives milliseconds (monotonic; tests pass their own).
    public init(settings: Settings = Settings(), clock: @escaping @Sendable () -> Int64 = { MonotonicClock.milliseconds() }) {
        self.settings = settings
        self.clock = clock
    }

    /// Takes a new connection's token from `address`'s bucket, or says why it may not connect.
    public func admit(_ address: String) -> Refusal? {
        let now = clock()
        return state.withLock { state in
            sweep(&state, now: now)
            var entry = state.entries[address]
                ?? Entry(bucket: TokenBucket(burst: settings.newBurst, perSecond: Double(settings.newPerSecond), now: now))
            defer { state.entries[address] = entry }
            guard entry.open < settings.openPerAddress else {
                return Refusal(message: "too many connections from this address (\(settings.openPerAddress) open); close one first", retryAfterSeconds: 5)
            }
            if let wait = entry.bucket.take(now: now) {
                return Refusal(message: "too many new connections from this address (\(settings.newPerSecond) a second); try again shortly",
                               retryAfterSeconds: Int((wait + 999) / 1000))
            }
            return nil
        }
    }

    /// A connection `admit` let through now exists.
    public func opened(_ address: String) {
        let now = clock()
        state.withLock { state in
            var entry = state.entries[address]
                ?? Entry(bucket: TokenBucket(burst: settings.newBurst, perSecond: Double(settings.newPerSecond), now: now))
            entry.open += 1
            state.entries[address] = entry
        }
    }

    /// A connection counted by `opened` has ended.
    public func release(_ address: String) {
        state.withLock { state in
            guard var entry = state.entries[address] else { return }
            entry.open = max(0, entry.open - 1)
            state.entries[address] = entry
        }
    }

    public func openConnections(from address: String) -> Int {
        state.withLock { $0.entries[address]?.open ?? 0 }
    }

    /// Once a minute, forgets addresses with nothing open and a full bucket.
    private func sweep(_ state: inout (entries: [String: Entry], lastSweep: Int64), now: Int64) {
        guard now - state.lastSweep >= 60_000 else { return }
        state.lastSweep = now
        state.entries = state.entries.filter { $0.value.open > 0 || !$0.value.bucket.isFull(at: now) }
    }
}
