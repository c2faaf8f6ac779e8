import ChatCore
import DotEnv
import HTTPServer
import Logging
import PostgresClient
import ServerLogging
import ServerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// Every setting in one place: the process environment first, then `.env`, then defaults.
/// `.env.example` documents each one.
struct Configuration {
    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    var host = "::"
    var port = 5001
    var workers = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    /// Required to serve; `migrate` does without.
    var jwtSecret: String?
    var database: PostgresConnectionOptions
    /// How the database was given, password hidden, for the start-up line.
    var databaseDescription: String
    var databasePoolSize = 4
    var bcryptCost = Bcrypt.defaultCost
    /// Threads hashing passwords. One core is left to the chat: with bcrypt on every core,
    /// commits waited up to a second (README, Performance, "Logins").
    var bcryptThreads = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) - 1)
    /// Threads hashing passwords only while no message has been written for a quarter of a
    /// second: with the chat quiet, logins have every core; busy, they give the extra back.
    var bcryptQuietThreads = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) > 1 ? 1 : 0
    var maxMessageBytes = 16_384
    /// Messages waiting for the database at most (`MessageWriter`'s hard bound): past it a
    /// message is refused ("try again"); senders are paused long before, at 4,000 waiting.
    var messageQueueLimit = 20_000
    /// How long a login's token is valid (`exp` − `iat`), as the Node server: one hour.
    var tokenLifetimeSeconds: Int64 = 3600
    /// How long after a login its tokens can be refreshed without the password.
    var sessionLifetimeSeconds = AccountService.defaultSessionLifetime
    /// How long a user whose last socket went still counts as online (a reconnect within it
    /// is no change): presence flapping does not reach their contacts.
    var presenceGraceMilliseconds: Int64 = 5_000
    /// Connection state recovery for every socket, not only those whose CONNECT asks for it.
    var connectionStateRecovery = false
    /// Limits on password guessing and mass registration.
    var loginThrottle = LoginThrottle.Settings()
    /// Per-user limits on sockets: how many, and what they send.
    var eventRateLimits = EventRateLimits.Settings()
    /// Engine.IO sessions per client address: open at once, and new ones a second.
    var connectionCaps = ConnectionCaps.Settings()
    /// Which web pages may use the server (`ALLOWED_ORIGINS`); every one by default.
    var allowedOrigins = OriginPolicy.any
    /// Load balancers whose X-Forwarded-For names the client (`TRUSTED_PROXIES`); none by default.
    var trustedProxies = TrustedProxies.none
    /// Starts every Engine.IO session id (`INSTANCE_ID` and a dot), so a load balancer in front
    /// of several processes can send a polling session's requests to the process that has it.
    var instanceID = ""
    /// When set, `GET /metrics` asks for `Authorization: Bearer <it>` (`METRICS_TOKEN`).
    var metricsToken: String?
    var maxHeaderBytes = 16_384
    var maxBodyBytes = 1_048_576
    var headerTimeoutMilliseconds: Int64 = 10_000
    var requestTimeoutMilliseconds: Int64 = 30_000
    var idleTimeoutMilliseconds: Int64 = 60_000
    var shutdownTimeoutMilliseconds: Int64 = 10_000
    var logLevel = Logger.Level.info
    var logFormat = LogLineHandler.Format.text

    /// The variables, environment winning over the file's.
    static func variables(environment: [String: String], dotEnvText: String?) -> [String: String] {
        var merged: [String: String] = [:]
        if let dotEnvText { for (key, value) in DotEnv.parse(dotEnvText) { merged[key] = value } }
        for (key, value) in environment { merged[key] = value }
        return merged
    }

    init(_ variables: [String: String]) throws(Invalid) {
        func value(_ key: String) -> String? {
            guard let raw = variables[key] else { return nil }
            return raw.isEmpty ? nil : raw
        }
        func integer(_ key: String, _ range: ClosedRange<Int>) throws(Invalid) -> Int? {
            guard let text = value(key) else { return nil }
            guard let number = Int(text), range.contains(number) else {
                throw Invalid(description: "\(key) must be a whole number in \(range.lowerBound)…\(range.upperBound), not '\(text)'")
            }
            return number
        }

        jwtSecret = value("JWT_SECRET")
        if let host = value("HOST") { self.host = host }
        if let port = try integer("PORT", 0...65535) { self.port = port }
        if let workers = try integer("WORKERS", 1...256) { self.workers = workers }
        if let size = try integer("DB_POOL_SIZE", 1...64) { databasePoolSize = size }
        if let cost = try integer("BCRYPT_COST", Bcrypt.costRange.lowerBound...Bcrypt.costRange.upperBound) { bcryptCost = cost }
        if let threads = try integer("BCRYPT_THREADS", 1...256) { bcryptThreads = threads }
        if let threads = try integer("BCRYPT_QUIET_THREADS", 0...256) { bcryptQuietThreads = threads }
        if let bytes = try integer("MAX_MESSAGE_BYTES", 1...1_000_000) { maxMessageBytes = bytes }
        if let limit = try integer("MESSAGE_QUEUE_LIMIT", 1...10_000_000) { messageQueueLimit = limit }
        if let seconds = try integer("TOKEN_LIFETIME_SECONDS", 1...31_536_000) { tokenLifetimeSeconds = Int64(seconds) }
        if let seconds = try integer("SESSION_LIFETIME_SECONDS", 1...315_360_000) { sessionLifetimeSeconds = Int64(seconds) }
        if let seconds = try integer("PRESENCE_GRACE_SECONDS", 0...3600) { presenceGraceMilliseconds = Int64(seconds) * 1000 }
        if let seconds = try integer("HEADER_TIMEOUT_SECONDS", 1...3600) { headerTimeoutMilliseconds = Int64(seconds) * 1000 }
        if let seconds = try integer("IDLE_TIMEOUT_SECONDS", 1...86400) { idleTimeoutMilliseconds = Int64(seconds) * 1000 }
        if let seconds = try integer("SHUTDOWN_TIMEOUT_SECONDS", 0...3600) { shutdownTimeoutMilliseconds = Int64(seconds) * 1000 }
        if let flag = value("CONNECTION_STATE_RECOVERY") {
            guard let parsed = ["true": true, "1": true, "on": true, "yes": true, "false": false, "0": false, "off": false, "no": false][flag.lowercased()] else {
                throw Invalid(description: "CONNECTION_STATE_RECOVERY must be true or false, not '\(flag)'")
            }
            connectionStateRecovery = parsed
        }
        if let count = try integer("LOGIN_FAILURES_BEFORE_DELAY", 1...1000) { loginThrottle.accountFreeFailures = count }
        if let rate = try integer("LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE", 1...100_000_000) {
            loginThrottle.addressFailuresPerMinute = rate
            loginThrottle.addressFailureBurst = rate * 3
        }
        if let rate = try integer("REGISTRATIONS_PER_ADDRESS_PER_HOUR", 1...100_000_000) { loginThrottle.registrationsPerHour = rate }
        // Socket events per user: `<KIND>_BURST` at once, then `<KIND>_PER_SECOND`; a burst of 0 turns one off.
        for (kind, name) in [(EventRateLimits.Kind.message, "MESSAGE"), (.typing, "TYPING_EVENT"), (.receipt, "RECEIPT"), (.other, "OTHER_EVENT")] {
            if let burst = try integer("\(name)_BURST", 0...100_000_000) { eventRateLimits[kind].burst = burst }
            if let rate = try integer("\(name)S_PER_SECOND", 1...100_000_000) { eventRateLimits[kind].perSecond = Double(rate) }
        }
        if let count = try integer("REFUSED_EVENTS_BEFORE_DISCONNECT", 1...100_000_000) { eventRateLimits.refusalsBeforeDisconnect = count }
        if let count = try integer("SOCKETS_PER_USER", 0...100_000_000) { eventRateLimits.socketsPerUser = count }
        if let count = try integer("CONNECTIONS_PER_ADDRESS", 1...100_000_000) { connectionCaps.openPerAddress = count }
        if let rate = try integer("NEW_CONNECTIONS_PER_ADDRESS_PER_SECOND", 1...10_000_000) {
            connectionCaps.newPerSecond = rate
            connectionCaps.newBurst = rate * 10
        }
        if let proxies = value("TRUSTED_PROXIES") {
            do { trustedProxies = try TrustedProxies(setting: proxies) } catch { throw Invalid(description: error.description) }
        }
        if let id = value("INSTANCE_ID"), !id.isEmpty {
            guard (1...32).contains(id.utf8.count), id.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2D || $0 == 0x5F }) else {
                throw Invalid(description: "INSTANCE_ID must be 1 to 32 letters, digits, '-' or '_', not '\(id)'")
            }
            instanceID = id
        }
        if let token = value("METRICS_TOKEN") {
            guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw Invalid(description: "METRICS_TOKEN must be printable ASCII without spaces (it travels in an Authorization header)")
            }
            metricsToken = token
        }
        if let origins = value("ALLOWED_ORIGINS") {
            do { allowedOrigins = try OriginPolicy(setting: origins) } catch { throw Invalid(description: error.description) }
        }
        if let level = value("LOG_LEVEL") {
            guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
                throw Invalid(description: "LOG_LEVEL must be one of \(Self.logLevelNames), not '\(level)'")
            }
            logLevel = parsed
        }
        if let format = value("LOG_FORMAT") {
            guard let parsed = LogLineHandler.Format(rawValue: format.lowercased()) else {
                throw Invalid(description: "LOG_FORMAT must be text or json, not '\(format)'")
            }
            logFormat = parsed
        }

        if let url = value("DATABASE_URL") {
            database = .url(url)
            databaseDescription = Self.redactingPassword(url)
        } else {
            // The Node server's names; what is unset falls back to libpq's defaults, as with node-pg.
            let names = [("DB_HOST", "host"), ("DB_PORT", "port"), ("DB_USER", "user"), ("DB_PASSWORD", "password"), ("DB_NAME", "dbname")]
            database = PostgresConnectionOptions(keywords: names.compactMap { name, keyword in value(name).map { (keyword, $0) } })
            let user = value("DB_USER").map { $0 + "@" } ?? ""
            databaseDescription = "postgres://\(user)\(value("DB_HOST") ?? "localhost"):\(value("DB_PORT") ?? "5432")/\(value("DB_NAME") ?? "")"
        }
    }

    /// What every HTTP connection obeys.
    var httpLimits: HTTPConnectionLimits {
        var limits = HTTPConnectionLimits()
        limits.parser.maxHeaderBytes = maxHeaderBytes
        limits.parser.maxBodyBytes = maxBodyBytes
        limits.headerTimeoutMilliseconds = headerTimeoutMilliseconds
        limits.requestTimeoutMilliseconds = requestTimeoutMilliseconds
        limits.idleTimeoutMilliseconds = idleTimeoutMilliseconds
        limits.trustedProxies = trustedProxies
        return limits
    }

    /// Where a client on this machine reaches the server: `localhost` for a wildcard host.
    var localURL: String {
        Self.url(host: ["::", "0.0.0.0", ""].contains(host) ? "localhost" : host, port: port)
    }

    /// `http://host:port`, an IPv6 address in brackets.
    static func url(host: String, port: Int) -> String {
        "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    /// swift-log's levels, lowest first, as LOG_LEVEL takes them.
    static let logLevelNames = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")

    /// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
    static func redactingPassword(_ url: String) -> String {
        guard let scheme = url.firstRange(of: "://"), let at = url[scheme.upperBound...].lastIndex(of: "@") else { return url }
        let credentials = url[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}
