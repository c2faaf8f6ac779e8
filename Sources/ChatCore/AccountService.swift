import JSON
import JWT
import ServerRuntime
import Synchronization

/// Registration, login, token checks and user lookup: the REST account logic, independent of
/// HTTP. Completions run on whatever thread finished the work.
public final class AccountService: Sendable {
    public typealias Clock = @Sendable () -> Int64

    private let store: any ChatStore
    private let signer: JWTSigner
    private let bcryptCost: Int
    private let hashing: WorkQueue
    private let now: Clock
    /// Seconds a login's token is valid (the Node server's one hour unless configured).
    private let tokenLifetime: Int64
    /// A hash at the configured cost, compared against when an email is unknown, so a login
    /// for an unknown email takes as long as one with a wrong password.
    private let decoyHash = Mutex<String?>(nil)

    public init(store: any ChatStore, signer: JWTSigner, bcryptCost: Int, hashing: WorkQueue, now: @escaping Clock,
                tokenLifetime: Int64 = JWTSigner.defaultLifetime) {
        self.store = store
        self.tokenLifetime = tokenLifetime
        self.signer = signer
        self.bcryptCost = bcryptCost
        self.hashing = hashing
        self.now = now
    }

    public struct Session: Sendable, Equatable {
        public let token: String
        public let user: User
    }

    public func register(_ body: JSONValue, completion: @escaping @Sendable (Result<User, ServiceError>) -> Void) {
        guard case .object(let fields) = body else { return completion(.failure(.invalidInput("request body must be a JSON object"))) }
        let username: String, email: String, password: String
        switch (requiredString(fields, "username"), requiredString(fields, "email"), requiredString(fields, "password")) {
        case (.success(let u), .success(let e), .success(let p)): (username, email, password) = (u, e, p)
        case (.failure(let error), _, _), (_, .failure(let error), _), (_, _, .failure(let error)): return completion(.failure(error))
        }
        let validated = Validation.username(username).flatMap { name in
            Validation.email(email).flatMap { mail in Validation.newPassword(password).map { (name, mail, $0) } }
        }
        guard case .success(let (validName, validEmail, validPassword)) = validated else {
            if case .failure(let failure) = validated { completion(.failure(.invalidInput(failure.message))) }
            return
        }
        let store = self.store, cost = bcryptCost
        let accepted = hashing.submit {
            let hash: String
            do { hash = try Bcrypt.hash(validPassword, cost: cost) } catch { return completion(.failure(.internalError)) }
            store.createUser(username: validName, email: validEmail, passwordHash: hash) { result in
                completion(result.mapError(ServiceError.init))
            }
        }
        if !accepted { completion(.failure(.unavailable)) }
    }

    public func login(_ body: JSONValue, completion: @escaping @Sendable (Result<Session, ServiceError>) -> Void) {
        guard case .object(let fields) = body else { return completion(.failure(.invalidInput("request body must be a JSON object"))) }
        let email: String, password: String
        switch (requiredString(fields, "email"), requiredString(fields, "password")) {
        case (.success(let e), .success(let p)): (email, password) = (e, p)
        case (.failure(let error), _), (_, .failure(let error)): return completion(.failure(error))
        }
        let trimmedEmail = Validation.trimWhitespace(email)
        guard !trimmedEmail.isEmpty, trimmedEmail.utf8.count <= Validation.maxEmailBytes, !trimmedEmail.utf8.contains(0) else {
            return completion(.failure(.invalidCredentials))
        }
        store.credentials(forEmail: trimmedEmail) { [self] result in
            switch result {
            case .failure(let error):
                completion(.failure(ServiceError(error)))
            case .success(let credentials):
                let accepted = hashing.submit { [self] in
                    guard let credentials else {
                        _ = Bcrypt.verify(password, hash: decoy())
                        return completion(.failure(.invalidCredentials))
                    }
                    guard !password.utf8.contains(0), Bcrypt.verify(password, hash: credentials.passwordHash) else {
                        return completion(.failure(.invalidCredentials))
                    }
                    let token = signer.sign(userID: credentials.user.id, issuedAt: now(), lifetime: tokenLifetime)
                    completion(.success(Session(token: token, user: credentials.user)))
                }
                if !accepted { completion(.failure(.unavailable)) }
            }
        }
    }

    /// The user id of a valid `Authorization` header, with the Node server's reading of it:
    /// the token is the second space-separated word.
    public func authenticate(authorizationHeader: String?) -> Result<String, ServiceError> {
        guard let header = authorizationHeader, !header.isEmpty else { return .failure(.missingToken) }
        let words = header.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard words.count >= 2, !words[1].isEmpty else { return .failure(.invalidToken) }
        return authenticate(token: String(words[1]))
    }

    public func authenticate(token: String) -> Result<String, ServiceError> {
        guard let claims = try? signer.verify(token, now: now()), let userID = Validation.uuid(claims.userID) else {
            return .failure(.invalidToken)
        }
        return .success(userID)
    }

    public func findUser(email: String?, completion: @escaping @Sendable (Result<User, ServiceError>) -> Void) {
        guard let email, !Validation.trimWhitespace(email).isEmpty else {
            return completion(.failure(.invalidInput("query parameter email is required")))
        }
        let trimmed = Validation.trimWhitespace(email)
        guard trimmed.utf8.count <= Validation.maxEmailBytes, !trimmed.utf8.contains(0) else {
            return completion(.failure(ServiceError(.notFound, "User not found")))
        }
        store.user(withEmail: trimmed) { result in
            switch result {
            case .failure(let error): completion(.failure(ServiceError(error)))
            case .success(nil): completion(.failure(ServiceError(.notFound, "User not found")))
            case .success(let user?): completion(.success(user))
            }
        }
    }

    private func decoy() -> String {
        if let hash = decoyHash.withLock({ $0 }) { return hash }
        let hash = (try? Bcrypt.hash("decoy password for unknown emails", cost: bcryptCost)) ?? ""
        decoyHash.withLock { $0 = hash }
        return hash
    }

    private func requiredString(_ fields: JSONObject, _ name: String) -> Result<String, ServiceError> {
        guard let value = fields[name], value != .null else { return .failure(.invalidInput("\(name) is required")) }
        guard let string = value.stringValue else { return .failure(.invalidInput("\(name) must be a string, not \(value.typeName)")) }
        return .success(string)
    }
}
