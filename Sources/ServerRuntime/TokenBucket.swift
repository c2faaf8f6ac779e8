/// A token bucket: holds at most `capacity` tokens, refilled continuously at `perMillisecond`;
/// each admitted action takes one. Every limit of the server (logins, registrations, socket
/// events) is one of these, kept by whoever owns the state it limits.
public struct TokenBucket: Sendable, Equatable {
    public let capacity: Double
    public let perMillisecond: Double
    public private(set) var tokens: Double
    public private(set) var updated: Int64

    /// Starts full at `now` (milliseconds of any monotonic clock).
    public init(capacity: Double, perMillisecond: Double, now: Int64) {
        self.capacity = capacity
        self.perMillisecond = perMillisecond
        tokens = capacity
        updated = now
    }

    public init(burst: Int, perSecond: Double, now: Int64) {
        self.init(capacity: Double(burst), perMillisecond: perSecond / 1000, now: now)
    }

    /// Takes a token: nil when there was one, else the milliseconds until there will be.
    public mutating func take(now: Int64) -> Int64? {
        refill(now: now)
        guard tokens < 1 else {
            tokens -= 1
            return nil
        }
        return millisecondsUntilToken
    }

    /// Takes a token whether or not there is one (the count may go below zero): for what is
    /// charged after the fact, such as a failure.
    public mutating func spend(now: Int64) {
        refill(now: now)
        tokens -= 1
    }

    /// Milliseconds until a token is there (0 when one is), without taking it.
    public mutating func wait(now: Int64) -> Int64 {
        refill(now: now)
        return tokens >= 1 ? 0 : millisecondsUntilToken
    }

    /// Full again by `now`: forgetting it loses nothing.
    public func isFull(at now: Int64) -> Bool {
        tokens + Double(max(0, now - updated)) * perMillisecond >= capacity
    }

    private var millisecondsUntilToken: Int64 {
        perMillisecond > 0 ? max(1, Int64(((1 - tokens) / perMillisecond).rounded(.up))) : Int64.max
    }

    private mutating func refill(now: Int64) {
        tokens = min(capacity, tokens + Double(max(0, now - updated)) * perMillisecond)
        updated = max(updated, now)
    }
}
