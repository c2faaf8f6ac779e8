import CLinux
import ChatCore
import JSON
import JWT
import Synchronization
import XCTest
import ChatTestSupport
import ServerRuntime

final class AccountServiceTests: XCTestCase {
    let now: Int64 = 1_800_000_000
    var store: InMemoryChatStore!
    var accounts: AccountService!
    let signer = JWTSigner(secret: "unit-test-secret")

    override func setUp() {
        let counter = Locked(0)
        store = InMemoryChatStore(makeID: {
            let n = counter.withLock { $0 += 1; return $0 }
            return "00000000-0000-4000-8000-\(String(repeating: "0", count: 12 - String(n).count))\(n)"
        })
        let fixedNow = now
        accounts = AccountService(store: store, signer: signer, bcryptCost: 4, hashing: WorkQueue(label: "test", limit: 16, threads: 2), now: { fixedNow })
    }

    /// Runs a callback-style call and waits for its result.
    private func wait<T: Sendable>(_ call: (@escaping @Sendable (T) -> Void) -> Void) -> T {
        let box = Locked<T?>(nil)
        let done = expectation(description: "completion")
        call { value in
            box.withLock { $0 = value }
            done.fulfill()
        }
        wait(for: [done], timeout: 10)
        return box.withLock { $0! }
    }

    private func register(_ body: JSONValue) -> Result<User, ServiceError> { wait { accounts.register(body, completion: $0) } }
    private func login(_ body: JSONValue) -> Result<AccountService.Session, ServiceError> { wait { accounts.login(body, completion: $0) } }

    func testRegisterThenLoginGivesATokenForTheUser() throws {
        let user = try register(["username": "Ann", "email": " Ann@Example.com ", "password": "password1"]).get()
        XCTAssertEqual(user.email, "Ann@Example.com")
        XCTAssertEqual(user.username, "Ann")
        let session = try login(["email": "ann@example.COM", "password": "password1"]).get()
        XCTAssertEqual(session.user, user)
        let claims = try signer.verify(session.token, now: now)
        XCTAssertEqual(claims.userID, user.id)
        XCTAssertEqual(claims.expiresAt, now + 3600)
    }

    func testDuplicateEmailIsAConflictWhateverItsCase() throws {
        _ = try register(["username": "a", "email": "a@x.com", "password": "password1"]).get()
        XCTAssertEqual(register(["username": "b", "email": "A@X.COM", "password": "password2"]), .failure(ServiceError(.conflict, "Email already registered")))
    }

    func testRegistrationRefusesBadInputWithAReason() {
        let cases: [(JSONValue, String)] = [
            ([], "request body must be a JSON object"),
            (["email": "a@x.com", "password": "password1"], "username is required"),
            (["username": "a", "email": "a@x.com"], "password is required"),
            (["username": 5, "email": "a@x.com", "password": "password1"], "username must be a string, not number"),
            (["username": "a", "email": "nope", "password": "password1"], "email must contain exactly one @"),
            (["username": "a", "email": "a@x.com", "password": "short"], "password must be at least 8 bytes"),
            (["username": "a", "email": "a@x.com", "password": .string(String(repeating: "p", count: 73))],
             "password must be at most 72 bytes (bcrypt ignores the rest)"),
            (["username": "", "email": "a@x.com", "password": "password1"], "username must not be empty"),
            (["username": nil, "email": "a@x.com", "password": "password1"], "username is required"),
        ]
        for (body, message) in cases {
            XCTAssertEqual(register(body), .failure(.invalidInput(message)), "\(body)")
        }
    }

    func testLoginFailuresAllLookTheSame() throws {
        _ = try register(["username": "a", "email": "a@x.com", "password": "password1"]).get()
        XCTAssertEqual(login(["email": "a@x.com", "password": "password2"]).map(\.token), .failure(.invalidCredentials))
        XCTAssertEqual(login(["email": "nobody@x.com", "password": "password1"]).map(\.token), .failure(.invalidCredentials))
        XCTAssertEqual(login(["email": "a@x.com", "password": "password1\u{0}"]).map(\.token), .failure(.invalidCredentials))
        XCTAssertEqual(login(["email": "a@x.com"]).map(\.token), .failure(.invalidInput("password is required")))
    }

    func testLoginAcceptsShortPasswordsOfOldAccounts() throws {
        // An account the Node server made, with a password our registration would refuse.
        let hash = try Bcrypt.hash("abc", cost: 4)
        _ = wait { store.createUser(username: "old", email: "old@x.com", passwordHash: hash, completion: $0) } as Result<User, StoreError>
        XCTAssertNoThrow(try login(["email": "old@x.com", "password": "abc"]).get())
    }

    func testStoreOutageIsUnavailableNotAnInternalError() {
        store.setAvailable(false)
        XCTAssertEqual(register(["username": "a", "email": "a@x.com", "password": "password1"]), .failure(.unavailable))
        XCTAssertEqual(login(["email": "a@x.com", "password": "password1"]).map(\.token), .failure(.unavailable))
    }

    private func authenticate(_ token: String) -> Result<String, ServiceError> {
        wait { accounts.authenticate(token: token, completion: $0) }.map(\.userID)
    }

    func testAuthenticateReadsTheHeaderLikeTheNodeServer() throws {
        store.addUser(id: "6fc4098f-58e0-4b2f-8494-c932d968b32a", email: "a@x.com")
        let token = signer.sign(userID: "6FC4098F-58E0-4B2F-8494-C932D968B32A", issuedAt: now - 10)
        XCTAssertEqual(AccountService.token(authorizationHeader: "Bearer \(token)"), .success(token))
        XCTAssertEqual(AccountService.token(authorizationHeader: "Token \(token) more"), .success(token))
        XCTAssertEqual(AccountService.token(authorizationHeader: nil), .failure(.missingToken))
        XCTAssertEqual(AccountService.token(authorizationHeader: ""), .failure(.missingToken))
        XCTAssertEqual(AccountService.token(authorizationHeader: "Bearer"), .failure(.invalidToken))
        XCTAssertEqual(authenticate(token), .success("6fc4098f-58e0-4b2f-8494-c932d968b32a"))
        XCTAssertEqual(authenticate("garbage"), .failure(.invalidToken))
        let expired = signer.sign(userID: "6fc4098f-58e0-4b2f-8494-c932d968b32a", issuedAt: now - 3600)
        XCTAssertEqual(authenticate(expired), .failure(.invalidToken))
        let notAUUID = signer.sign(userID: "admin", issuedAt: now)
        XCTAssertEqual(authenticate(notAUUID), .failure(.invalidToken))
        let nobody = signer.sign(userID: "00000000-0000-4000-8000-00000000ffff", issuedAt: now)
        XCTAssertEqual(authenticate(nobody), .failure(.invalidToken), "a user who does not exist")
    }

    func testLogoutRevokesEveryTokenIssuedBeforeIncludingTheNodeServersAndANewLoginWorks() throws {
        let user = try register(["username": "a", "email": "a@x.com", "password": "password1"]).get()
        let phone = try login(["email": "a@x.com", "password": "password1"]).get().token
        let laptop = try login(["email": "a@x.com", "password": "password1"]).get().token
        let fromNode = signer.sign(userID: user.id, issuedAt: now - 60)  // no gen claim
        for token in [phone, laptop, fromNode] { XCTAssertEqual(authenticate(token), .success(user.id)) }
        XCTAssertNoThrow(try wait { accounts.logout(userID: user.id, completion: $0) }.get())
        for token in [phone, laptop, fromNode] { XCTAssertEqual(authenticate(token), .failure(.invalidToken)) }
        let fresh = try login(["email": "a@x.com", "password": "password1"]).get().token
        XCTAssertEqual(try signer.verify(fresh, now: now).generation, 1)
        XCTAssertEqual(authenticate(fresh), .success(user.id))
        XCTAssertEqual(wait { accounts.logout(userID: "00000000-0000-4000-8000-00000000ffff", completion: $0) }.map { "done" }, .failure(.invalidToken))
    }

    func testAProcessThatNeverSawTheRevocationReadsItFromTheStore() throws {
        let user = try register(["username": "a", "email": "a@x.com", "password": "password1"]).get()
        let token = try login(["email": "a@x.com", "password": "password1"]).get().token
        XCTAssertNoThrow(try wait { accounts.logout(userID: user.id, completion: $0) }.get())
        let fixedNow = now
        let restarted = AccountService(store: store, signer: signer, bcryptCost: 4, hashing: WorkQueue(label: "t2", limit: 4, threads: 1), now: { fixedNow })
        XCTAssertFalse(restarted.knowsGeneration(of: user.id))
        XCTAssertEqual(wait { restarted.authenticate(token: token, completion: $0) }.map(\.userID), .failure(.invalidToken))
        XCTAssertTrue(restarted.knowsGeneration(of: user.id))
    }

    func testWithTheStoreAwayATokenIsLetThroughUncheckedAndSaysSo() throws {
        let user = try register(["username": "a", "email": "a@x.com", "password": "password1"]).get()
        let token = signer.sign(userID: user.id, issuedAt: now)
        store.setAvailable(false)
        let authenticated = try wait { accounts.authenticate(token: token, completion: $0) }.get()
        XCTAssertFalse(authenticated.verified)
        store.setAvailable(true)
        XCTAssertTrue(try wait { accounts.authenticate(token: token, completion: $0) }.get().verified)
    }

    func testChangingThePasswordChecksTheOldOneRevokesEarlierTokensAndGivesAFreshOne() throws {
        let user = try register(["username": "a", "email": "a@x.com", "password": "password1"]).get()
        let old = try login(["email": "a@x.com", "password": "password1"]).get().token
        func change(_ body: JSONValue) -> Result<AccountService.Session, ServiceError> {
            wait { accounts.changePassword(userID: user.id, body, completion: $0) }
        }
        XCTAssertEqual(change(["old_password": "wrong one", "new_password": "password2"]).map(\.token),
                       .failure(ServiceError(.invalidCredentials, "old_password is not the current password")))
        XCTAssertEqual(change(["old_password": "password1", "new_password": "short"]).map(\.token),
                       .failure(.invalidInput("new_password must be at least 8 bytes")))
        XCTAssertEqual(change(["new_password": "password2"]).map(\.token), .failure(.invalidInput("old_password is required")))
        XCTAssertEqual(authenticate(old), .success(user.id), "refusals revoke nothing")
        let session = try change(["old_password": "password1", "new_password": "password2"]).get()
        XCTAssertEqual(session.user, user)
        XCTAssertEqual(authenticate(old), .failure(.invalidToken))
        XCTAssertEqual(authenticate(session.token), .success(user.id))
        XCTAssertEqual(login(["email": "a@x.com", "password": "password1"]).map(\.token), .failure(.invalidCredentials))
        XCTAssertNoThrow(try login(["email": "a@x.com", "password": "password2"]).get())
    }

    func testGuessingTheOldPasswordIsThrottledAsLoginsAre() throws {
        let fixedNow = now
        accounts = AccountService(store: store, signer: signer, bcryptCost: 4, hashing: WorkQueue(label: "t3", limit: 16, threads: 2),
                                  now: { fixedNow }, throttle: LoginThrottle(clock: { 1_000 }))
        let user = try register(["username": "a", "email": "a@x.com", "password": "password1"]).get()
        for _ in 0..<5 {
            XCTAssertEqual(wait { accounts.changePassword(userID: user.id, ["old_password": "guess", "new_password": "password2"], completion: $0) }.map(\.token),
                           .failure(ServiceError(.invalidCredentials, "old_password is not the current password")))
        }
        let throttled = wait { accounts.changePassword(userID: user.id, ["old_password": "password1", "new_password": "password2"], completion: $0) }
        XCTAssertEqual(throttled.map(\.token), .failure(ServiceError(.tooManyRequests(retryAfterSeconds: 1), "Too many failed password checks; try again in 1 s")))
    }

    func testRefreshKeepsTheGenerationAndTheLoginTimeUntilTheSessionIsTooOld() throws {
        let clock = Locked(now)
        accounts = AccountService(store: store, signer: signer, bcryptCost: 4, hashing: WorkQueue(label: "t4", limit: 16, threads: 2),
                                  now: { clock.withLock { $0 } }, sessionLifetime: 86_400)
        let user = try register(["username": "a", "email": "a@x.com", "password": "password1"]).get()
        var token = try login(["email": "a@x.com", "password": "password1"]).get().token
        for hour in 1...23 {
            clock.withLock { $0 = now + Int64(hour) * 3_000 }
            let authenticated = try wait { accounts.authenticate(token: token, completion: $0) }.get()
            let fresh = try accounts.refresh(authenticated).get()
            let claims = try signer.verify(fresh.token, now: clock.withLock { $0 })
            XCTAssertEqual(claims.authenticatedAt, now, "the login's time, kept")
            XCTAssertEqual(claims.generation, 0)
            XCTAssertEqual(fresh.expiresAt, min(clock.withLock { $0 } + 3600, now + 86_400))
            token = fresh.token
        }
        clock.withLock { $0 = now + 86_400 }
        let late = signer.sign(userID: user.id, issuedAt: now + 86_000, lifetime: 3600, generation: 0, authenticatedAt: now)
        let authenticated = try wait { accounts.authenticate(token: late, completion: $0) }.get()
        XCTAssertEqual(accounts.refresh(authenticated).map(\.token), .failure(ServiceError(.invalidCredentials, "This session is too old to refresh; log in again")))
    }

    func testFindUserByEmail() throws {
        let user = try register(["username": "a", "email": "a@x.com", "password": "password1"]).get()
        XCTAssertEqual(wait { accounts.findUser(email: "A@x.com", completion: $0) }, .success(user))
        XCTAssertEqual(wait { accounts.findUser(email: "b@x.com", completion: $0) }, .failure(ServiceError(.notFound, "User not found")))
        XCTAssertEqual(wait { accounts.findUser(email: nil, completion: $0) }, .failure(.invalidInput("query parameter email is required")))
    }

    // MARK: - Finding people

    private func search(_ query: String?, limit: Int? = nil, after: String? = nil) -> Result<AccountService.UserPage, ServiceError> {
        wait { accounts.searchUsers(query: query, limit: limit, after: after, completion: $0) }
    }

    private func addPeople() {
        let people: [(String, String?)] = [("bob@x.io", "Bob"), ("bobby@x.io", "bobby"), ("zed@x.io", "Bob_Z"), ("bo%b@x.io", nil),
                                           ("bob.smith@x.io", "smith"), ("alice@x.io", "alice"), ("b@x.io", "B")]
        for (index, (email, username)) in people.enumerated() {
            store.addUser(id: "00000000-0000-4000-8000-0000000001\(index)0", email: email, username: username)
        }
    }

    func testUsernamesFirstThenEmailsPagedWithoutRepeats() throws {
        addPeople()
        var names: [String] = []
        var after: String?
        var pages = 0
        repeat {
            let page = try search(" BO ", limit: 2, after: after).get()
            names += page.users.map { $0.username ?? $0.email }
            after = page.next
            pages += 1
        } while after != nil && pages < 10
        XCTAssertEqual(names, ["Bob", "Bob_Z", "bobby", "bo%b@x.io", "smith"], "usernames in byte order, then emails not found by name")
    }

    func testWildcardsAreLiteral() throws {
        addPeople()
        XCTAssertEqual(try search("bo%").get().users.map(\.email), ["bo%b@x.io"])
        XCTAssertEqual(try search("bob_").get().users.map(\.email), ["zed@x.io"])
        XCTAssertEqual(try search("%").get().users, [])
        XCTAssertEqual(try search("_").get().users, [])
    }

    func testBadSearchesAreRefused() {
        for query in [nil, "", "   ", String(repeating: "a", count: 65), "a\u{0}b"] {
            XCTAssertEqual(search(query).failure?.message, "q must be 1 to 64 characters", query ?? "nil")
        }
        for after in ["", "0", "2.00000000-0000-4000-8000-000000000010", "0.not-a-uuid", "x.00000000-0000-4000-8000-000000000010"] {
            XCTAssertEqual(search("bo", after: after).failure?.message, "after must be the next of a previous page", after)
        }
        XCTAssertEqual(search("bo", after: "0.00000000-0000-4000-8000-0000000009ff").failure?.message, "after must be the next of a previous page")
        XCTAssertEqual(try search("b", limit: 1000).get().users.count, 0, "nobody yet")
    }
}

private extension Result {
    var failure: Failure? { if case .failure(let error) = self { error } else { nil } }
}
