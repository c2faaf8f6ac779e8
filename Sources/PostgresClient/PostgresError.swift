/// What went wrong talking to PostgreSQL. `sqlState` is the five-character SQLSTATE of a
/// server error (`23505` unique violation, …); callers map states to answers, never the
/// server's text.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The server answered the statement with an error.
        case server
        /// The connection broke while the statement was in flight: it may or may not have run.
        case connectionLost
        /// No connection to the database could be had in time.
        case unavailable
        /// Too many statements are already waiting.
        case overloaded
        /// The pool is shutting down.
        case shuttingDown
        /// A connection could not be opened (blocking API).
        case connectionFailed
    }

    public let kind: Kind
    public let sqlState: String?
    public let message: String

    public init(kind: Kind, sqlState: String? = nil, message: String) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
    }

    public var isUniqueViolation: Bool { sqlState == "23505" }

    public var description: String {
        if let sqlState { return "PostgreSQL error \(sqlState): \(message)" }
        return "PostgreSQL \(kind): \(message)"
    }
}
