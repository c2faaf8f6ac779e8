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
    private let decoyHash = Locked<String?>(nil)
    /// Limits on guessing and mass registration; nil: none.
    private let throttle: LoginThrottle?
    /// How long after a password was given its session's tokens can still be refreshed.
    private let sessionLifetime: Int64
    /// Each user's token generation as last read or moved by this process (see `remember`).
    private let generations = Locked<(byUser: [String: Int64], evictions: Int)>(([:], 0))
    /// Users whose generation is kept in memory, at most; past it the memory is cleared.
    public static let maxRememberedGenerations = 100_000

    public init(store: any ChatStore, signer: JWTSigner, bcryptCost: Int, hashing: WorkQueue, now: @escaping Clock,
                tokenLifetime: Int64 = JWTSigner.defaultLifetime, throttle: LoginThrottle? = nil,
                sessionLifetime: Int64 = AccountService.defaultSessionLifetime) {
        self.store = store
        self.sessionLifetime = sessionLifetime
        self.throttle = throttle
        self.tokenLifetime = tokenLifetime
        self.signer = signer
        self.bcryptCost = bcryptCost
        self.hashing = hashing
        self.now = now
    }

    /// Thirty days: a client refreshing its token keeps its session that long without the password.
    public static let defaultSessionLifetime: Int64 = 30 * 86_400

    public struct Session: Sendable, Equatable {
        public let token: String
        public let user: User
    }

    /// Whom a valid token speaks for. `verified` is false when the token's generation could not
    /// be checked (the database away and the user's generation not in memory): the token is
    /// let through — nothing can be read or stored meanwhile anyway — and the caller checks
    /// again once it can (a socket does, `ChatSocketApp`).
    public struct Authenticated: Sendable, Equatable {
        public let userID: String
        public let claims: JWTClaims
        public let verified: Bool
    }

    /// `address` is the client's (for the registration limit per address).
    public func register(_ body: JSONValue, from address: String = "", completion: @escaping @Sendable (Result<User, ServiceError>) -> Void) {
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
        if let refusal = throttle?.admitRegistration(address: address) {
            return completion(.failure(.tooManyAttempts(refusal, what: "registrations from this address")))
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

    /// `address` is the client's (for the limits on failed logins per address).
    public func login(_ body: JSONValue, from address: String = "", completion: @escaping @Sendable (Result<Session, ServiceError>) -> Void) {
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
        if let refusal = throttle?.checkLogin(email: trimmedEmail, address: address) {
            return completion(.failure(.tooManyAttempts(refusal, what: "failed logins")))
        }
        let evictions = generations.withLock { $0.evictions }
        store.credentials(forEmail: trimmedEmail) { [self] result in
            switch result {
            case .failure(let error):
                completion(.failure(ServiceError(error)))
            case .success(let credentials):
                let accepted = hashing.submit { [self] in
                    guard let credentials else {
                        _ = Bcrypt.verify(password, hash: decoy())
                        throttle?.loginFailed(email: trimmedEmail, address: address)
                        return completion(.failure(.invalidCredentials))
                    }
                    guard !password.utf8.contains(0), Bcrypt.verify(password, hash: credentials.passwordHash) else {
                        throttle?.loginFailed(email: trimmedEmail, address: address)
                        return completion(.failure(.invalidCredentials))
                    }
                    throttle?.loginSucceeded(email: trimmedEmail)
                    let generation = remember(credentials.user.id, generation: credentials.tokenGeneration, readAfter: evictions)
                    let issuedAt = now()
                    let token = signer.sign(userID: credentials.user.id, issuedAt: issuedAt, lifetime: tokenLifetime, generation: generation,
                                            authenticatedAt: issuedAt)
                    completion(.success(Session(token: token, user: credentials.user)))
                }
                if !accepted { completion(.failure(.unavailable)) }
            }
        }
    }

    /// The token of an `Authorization` header, read as the Node server does: the second
    /// space-separated word.
    public static func token(authorizationHeader: String?) -> Result<String, ServiceError> {
        guard let header = authorizationHeader, !header.isEmpty else { return .failure(.missingToken) }
        let words = header.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard words.count >= 2, !words[1].isEmpty else { return .failure(.invalidToken) }
        return .success(String(words[1]))
    }

    /// Checks a token: its signature and expiry, then that it is not revoked (its `gen` at
    /// least the user's generation, read from the database the first time this process meets
    /// the user). Completes at once when the generation is in memory. A revoked token, or one
    /// of a user who no longer exists, is `invalidToken`.
    public func authenticate(token: String, completion: @escaping @Sendable (Result<Authenticated, ServiceError>) -> Void) {
        guard let claims = try? signer.verify(token, now: now()), let userID = Validation.uuid(claims.userID) else {
            return completion(.failure(.invalidToken))
        }
        let (known, evictions) = generations.withLock { ($0.byUser[userID], $0.evictions) }
        if let known {
            return completion(claims.generation >= known ? .success(Authenticated(userID: userID, claims: claims, verified: true)) : .failure(.invalidToken))
        }
        store.tokenGeneration(of: userID) { [self] result in
            switch result {
            case .failure:
                completion(.success(Authenticated(userID: userID, claims: claims, verified: false)))
            case .success(nil):
                completion(.failure(.invalidToken))
            case .success(let generation?):
                let current = remember(userID, generation: generation, readAfter: evictions)
                completion(claims.generation >= current ? .success(Authenticated(userID: userID, claims: claims, verified: true)) : .failure(.invalidToken))
            }
        }
    }

    /// Keeps a generation read from the database and returns the one to go by. A generation
    /// only grows, so a read that raced a revocation never lowers what the revocation left;
    /// and a read begun before the memory was last cleared is not kept (it may predate a
    /// revocation whose value the clearing dropped).
    private func remember(_ userID: String, generation: Int64, readAfter evictions: Int) -> Int64 {
        generations.withLock { state in
            let current = max(state.byUser[userID] ?? generation, generation)
            guard state.evictions == evictions else { return current }
            if state.byUser.count >= Self.maxRememberedGenerations, state.byUser[userID] == nil {
                state.byUser.removeAll(keepingCapacity: true)
                state.evictions += 1
            }
            state.byUser[userID] = current
            return current
        }
    }

    /// Revokes every token of the user (a logout, on every device): the new generation.
    public func logout(userID: String, completion: @escaping @Sendable (Result<Void, ServiceError>) -> Void) {
        store.revokeTokens(of: userID, newPasswordHash: nil) { [self] result in
            switch result {
            case .failure(let error): completion(.failure(ServiceError(error)))
            case .success(nil): completion(.failure(.invalidToken))
            case .success(let generation?):
                revoked(userID, generation: generation)
                completion(.success(()))
            }
        }
    }

    /// `{old_password, new_password}`: checks the old password (limited as failed logins are,
    /// per account and address), stores the new one and revokes every earlier token in one
    /// statement; the answer is a fresh session for the client that asked.
    public func changePassword(userID: String, _ body: JSONValue, from address: String = "",
                               completion: @escaping @Sendable (Result<Session, ServiceError>) -> Void) {
        guard case .object(let fields) = body else { return completion(.failure(.invalidInput("request body must be a JSON object"))) }
        let old: String, new: String
        switch (requiredString(fields, "old_password"), requiredString(fields, "new_password")) {
        case (.success(let o), .success(let n)): (old, new) = (o, n)
        case (.failure(let error), _), (_, .failure(let error)): return completion(.failure(error))
        }
        let validNew: String
        switch Validation.newPassword(new) {
        case .success(let password): validNew = password
        case .failure(let failure): return completion(.failure(.invalidInput("new_" + failure.message)))
        }
        store.credentials(ofUser: userID) { [self] result in
            switch result {
            case .failure(let error): return completion(.failure(ServiceError(error)))
            case .success(nil): return completion(.failure(.invalidToken))
            case .success(let credentials?):
                if let refusal = throttle?.checkLogin(email: credentials.user.email, address: address) {
                    return completion(.failure(.tooManyAttempts(refusal, what: "failed password checks")))
                }
                let cost = bcryptCost
                let accepted = hashing.submit { [self] in
                    guard !old.utf8.contains(0), Bcrypt.verify(old, hash: credentials.passwordHash) else {
                        throttle?.loginFailed(email: credentials.user.email, address: address)
                        return completion(.failure(ServiceError(.invalidCredentials, "old_password is not the current password")))
                    }
                    throttle?.loginSucceeded(email: credentials.user.email)
                    let hash: String
                    do { hash = try Bcrypt.hash(validNew, cost: cost) } catch { return completion(.failure(.internalError)) }
                    store.revokeTokens(of: userID, newPasswordHash: hash) { [self] result in
                        switch result {
                        case .failure(let error): completion(.failure(ServiceError(error)))
                        case .success(nil): completion(.failure(.invalidToken))
                        case .success(let generation?):
                            revoked(userID, generation: generation)
                            let issuedAt = now()
                            let token = signer.sign(userID: userID, issuedAt: issuedAt, lifetime: tokenLifetime, generation: generation,
                                                    authenticatedAt: issuedAt)
                            completion(.success(Session(token: token, user: credentials.user)))
                        }
                    }
                }
                if !accepted { completion(.failure(.unavailable)) }
            }
        }
    }

    /// A fresh token for a valid one, without the password: same generation, same moment of
    /// authentication, a new expiry — until `sessionLifetime` after the password was given
    /// (for a token without `auth_time`, the Node server's, after it was issued).
    public func refresh(_ authenticated: Authenticated) -> Result<(token: String, expiresAt: Int64), ServiceError> {
        let claims = authenticated.claims
        let issuedAt = now()
        let authenticatedAt = claims.authenticatedAt ?? claims.issuedAt ?? issuedAt
        guard issuedAt - authenticatedAt < sessionLifetime else {
            return .failure(ServiceError(.invalidCredentials, "This session is too old to refresh; log in again"))
        }
        let lifetime = min(tokenLifetime, authenticatedAt + sessionLifetime - issuedAt)
        let token = signer.sign(userID: authenticated.userID, issuedAt: issuedAt, lifetime: lifetime, generation: claims.generation,
                                authenticatedAt: authenticatedAt)
        return .success((token, issuedAt + lifetime))
    }

    /// Whether this process has the user's token generation in memory (so a token of theirs
    /// it let in was checked against it).
    public func knowsGeneration(of userID: String) -> Bool {
        generations.withLock { $0.byUser[userID] != nil }
    }

    /// Another process revoked the user's tokens: the generation is read again at their next
    /// token (the revocation is committed by then).
    public func forgetGeneration(of userID: String) {
        generations.withLock { state in
            state.byUser.removeValue(forKey: userID)
            // A read begun before this may predate the revocation: not kept (see `remember`).
            state.evictions += 1
        }
    }

    /// Revocations may have been missed (this process could not hear the others for a while):
    /// every generation is read again.
    public func forgetAllGenerations() {
        generations.withLock { state in
            state.byUser.removeAll(keepingCapacity: true)
            state.evictions += 1
        }
    }

    /// After a revocation committed: from now on, tokens below `generation` are refused.
    private func revoked(_ userID: String, generation: Int64) {
        generations.withLock { state in
            state.byUser[userID] = max(state.byUser[userID] ?? generation, generation)
        }
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

    public static let defaultSearchLimit = 20
    public static let maxSearchLimit = 50
    public static let maxSearchPrefix = 64

    /// A page of a user search and where the next one starts (nil: no more).
    public struct UserPage: Sendable, Equatable {
        public let users: [User]
        public let next: String?
    }

    /// Users whose username or email starts with `query` (trimmed, compared case-insensitively;
    /// `%`, `_` and `\` are plain characters): those by username first, in username order, then
    /// those by email only, in email order. `after` is a page's `next`. Each page is at most
    /// `limit` (1…50, default 20) and reads an index range, never the table.
    public func searchUsers(query: String?, limit: Int?, after: String?,
                            completion: @escaping @Sendable (Result<UserPage, ServiceError>) -> Void) {
        let prefix = Validation.trimWhitespace(query ?? "")
        guard !prefix.isEmpty, prefix.count <= Self.maxSearchPrefix, !prefix.utf8.contains(0) else {
            return completion(.failure(.invalidInput("q must be 1 to \(Self.maxSearchPrefix) characters")))
        }
        var search = UserSearch(prefix: prefix, limit: min(max(limit ?? Self.defaultSearchLimit, 1), Self.maxSearchLimit))
        if let after {
            // "<phase>.<user id>", as `next` gives it.
            let parts = after.split(separator: ".", maxSplits: 1)
            guard parts.count == 2, let phase = Int(parts[0]), (0...1).contains(phase), let id = Validation.uuid(parts[1]) else {
                return completion(.failure(.invalidInput("after must be the next of a previous page")))
            }
            search.phase = phase
            search.afterID = id
        }
        fetchUsers(search, found: [], completion: completion)
    }

    /// Fills a page from the username phase, then the email phase.
    private func fetchUsers(_ search: UserSearch, found: [User], completion: @escaping @Sendable (Result<UserPage, ServiceError>) -> Void) {
        store.searchUsers(search) { [self] result in
            switch result {
            case .failure(let error):
                completion(.failure(ServiceError(error)))
            case .success(let users):
                let all = found + users
                if users.count == search.limit, let last = users.last {
                    return completion(.success(UserPage(users: all, next: "\(search.phase).\(last.id)")))
                }
                guard search.phase == 0 else { return completion(.success(UserPage(users: all, next: nil))) }
                // The username phase ran out: the rest of the page from the email phase.
                fetchUsers(UserSearch(prefix: search.prefix, phase: 1, afterID: nil, limit: search.limit - users.count), found: all,
                           completion: completion)
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
