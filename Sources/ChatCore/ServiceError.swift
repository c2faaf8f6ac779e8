/// A refusal or failure a client is told about. Each kind has one HTTP status and one
/// Socket.IO answer; `message` is safe to show (no database text ever goes in it).
public struct ServiceError: Error, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case invalidInput
        case missingToken
        case invalidToken
        case invalidCredentials
        case notFound
        case conflict
        /// Storage or hashing capacity is exhausted or away; try again later.
        case unavailable
        /// Too many attempts from this client or at this account (`LoginThrottle`).
        case tooManyRequests(retryAfterSeconds: Int)
        case internalError
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public static func invalidInput(_ message: String) -> ServiceError { ServiceError(.invalidInput, message) }
    public static let missingToken = ServiceError(.missingToken, "No token provided")
    public static let invalidToken = ServiceError(.invalidToken, "Invalid token")
    public static let invalidCredentials = ServiceError(.invalidCredentials, "Invalid credentials")
    public static let unavailable = ServiceError(.unavailable, "Service temporarily unavailable, try again")
    public static let internalError = ServiceError(.internalError, "Internal server error")

    /// The same words whatever the account: nothing tells whether it exists.
    public static func tooManyAttempts(_ refusal: LoginThrottle.Refusal, what: String) -> ServiceError {
        ServiceError(.tooManyRequests(retryAfterSeconds: refusal.retryAfterSeconds),
                     "Too many \(what); try again in \(refusal.retryAfterSeconds) s")
    }

    /// The client-facing error for a storage failure.
    public init(_ error: StoreError) {
        switch error {
        case .duplicateEmail: self.init(.conflict, "Email already registered")
        case .unavailable: self = .unavailable
        case .failed: self = .internalError
        case .invalidReference(let message): self = .invalidInput(message)
        }
    }
}
