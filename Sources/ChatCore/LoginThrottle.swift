import ServerRuntime
import Synchronization

/// Limits on password guessing and mass registration (OWASP Authentication Cheat Sheet),
/// kept in memory per process:
///
/// - per account (the email as typed, lower-cased — whether or not such an account exists, so
///   the answers tell nothing about it): `accountFreeFailures` failed logins in a row pass,
///   then each further attempt must wait twice as long as the one before since the last
///   failure (1 s, 2 s, 4 s … at most `accountMaxDelaySeconds`); a successful login resets it;
/// - per client address: failed logins spend a token bucket (`addressFailureBurst`, refilled
///   at `addressFailuresPerMinute`), so one address guessing across many accounts is stopped
///   too; successes cost nothing, so many honest people behind one address are not;
/// - registrations per address: a bucket of `registrationsPerHour`.
///
/// A throttled request is answered at once, before any database read or bcrypt work: a storm
/// of guesses costs the server almost nothing and takes no bcrypt time from honest logins.
public final class LoginThrottle: Sendable {
    public struct Settings: Sendable, Equatable {
        public var accountFreeFailures = 5
        public var accountMaxDelaySeconds = 900
        public var addressFailureBurst = 30
        public var addressFailuresPerMinute = 10
        public var registrationsPerHour = 20

        public init() {}
    }

    /// How long to wait before asking again.
    public struct Refusal: Error, Sendable, Equatable {
        public let retryAfterSeconds: Int

        public init(retryAfterSeconds: Int) {
            self.retryAfterSeconds = retryAfterSeconds
        }
    }

    private struct Account {
        var failures = 0
        var lastFailure: Int64 = 0
    }

    private struct State {
        var accounts: [String: Account] = [:]
        var failureBuckets: [String: TokenBucket] = [:]
        var registrationBuckets: [String: TokenBucket] = [:]
        var lastSweep: Int64 = 0
    }

    public let settings: Settings
    private let state = Locked(State())
    private let clock: @Sendable () -> Int64

    /// `clock` gives milliseconds (monotonic; tests pass their own).
    public init(settings: Settings = Settings(), clock: @escaping @Sendable () -> Int64 = { MonotonicClock.milliseconds() }) {
        self.settings = settings
        self.clock = clock
    }

    /// Before checking a password: nil to go on, or how long to wait.
    public func checkLogin(email: String, address: String) -> Refusal? {
        let now = clock()
        return state.withLock { state in
            sweep(&state, now: now)
            var wait: Int64 = 0
            if let account = state.accounts[Self.key(email)], account.failures >= settings.accountFreeFailures {
                wait = max(wait, account.lastFailure + delayMilliseconds(afterFailures: account.failures) - now)
            }
            if var bucket = state.failureBuckets[address] {
                wait = max(wait, bucket.wait(now: now))
                state.failureBuckets[address] = bucket
            }
            return wait > 0 ? Refusal(retryAfterSeconds: Int((wait + 999) / 1000)) : nil
        }
    }

    /// After a wrong password (or no such account).
    public func loginFailed(email: String, address: String) {
        let now = clock()
        state.withLock { state in
            var account = state.accounts[Self.key(email), default: Account()]
            account.failures += 1
            account.lastFailure = now
            state.accounts[Self.key(email)] = account
            var bucket = state.failureBuckets[address] ?? failureBucket(now: now)
            bucket.spend(now: now)
            state.failureBuckets[address] = bucket
        }
    }

    /// After a right password: the account's failures are forgotten.
    public func loginSucceeded(email: String) {
        _ = state.withLock { $0.accounts.removeValue(forKey: Self.key(email)) }
    }

    /// Before a registration: takes one from the address's bucket, or says how long to wait.
    public func admitRegistration(address: String) -> Refusal? {
        let now = clock()
        return state.withLock { state in
            var bucket = state.registrationBuckets[address]
                ?? TokenBucket(capacity: Double(settings.registrationsPerHour), perMillisecond: Double(settings.registrationsPerHour) / 3_600_000, now: now)
            defer { state.registrationBuckets[address] = bucket }
            return bucket.take(now: now).map { Refusal(retryAfterSeconds: Int(($0 + 999) / 1000)) }
        }
    }

    private func delayMilliseconds(afterFailures failures: Int) -> Int64 {
        let doublings = min(failures - settings.accountFreeFailures, 30)
        return min(Int64(1000) << doublings, Int64(settings.accountMaxDelaySeconds) * 1000)
    }

    private func failureBucket(now: Int64) -> TokenBucket {
        TokenBucket(capacity: Double(settings.addressFailureBurst), perMillisecond: Double(settings.addressFailuresPerMinute) / 60_000, now: now)
    }

    /// Once a minute, forgets what no longer limits anyone: memory stays bounded by the
    /// addresses and accounts active in the last quarter of an hour or so.
    private func sweep(_ state: inout State, now: Int64) {
        guard now - state.lastSweep >= 60_000 else { return }
        state.lastSweep = now
        let forgetAfter = Int64(settings.accountMaxDelaySeconds) * 2000
        state.accounts = state.accounts.filter { now - $0.value.lastFailure < forgetAfter }
        state.failureBuckets = state.failureBuckets.filter { !$0.value.isFull(at: now) }
        state.registrationBuckets = state.registrationBuckets.filter { !$0.value.isFull(at: now) }
    }

    private static func key(_ email: String) -> String {
        Validation.trimWhitespace(email).lowercased()
    }
}
