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
        let counter = Mutex(0)
        store = InMemoryChatStore(makeID: {
            let n = counter.withLock { $0 += 1; return $0 }
            return "00000000-0000-4000-8000-\(String(repeating: "0", count: 12 - String(n).count))\(n)"
        })
        let fixedNow = now
        accounts = AccountService(store: store, signer: signer, bcryptCost: 4, hashing: WorkQueue(label: "test", limit: 16, threads: 2), now: { fixedNow })
    }

    /// Runs a callback-style call and waits for its result.
    private func wait<T: Sendable>(_ call: (@escaping @Sendable (T) -> Void) -> Void) -> T {
        let box = Mutex<T?>(nil)
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

    func testAuthenticateReadsTheHeaderLikeTheNodeServer() throws {
        let token = signer.sign(userID: "6FC4098F-58E0-4B2F-8494-C932D968B32A", issuedAt: now - 10)
        XCTAssertEqual(accounts.authenticate(authorizationHeader: "Bearer \(token)"), .success("6fc4098f-58e0-4b2f-8494-c932d968b32a"))
        XCTAssertEqual(accounts.authenticate(authorizationHeader: nil), .failure(.missingToken))
        XCTAssertEqual(accounts.authenticate(authorizationHeader: ""), .failure(.missingToken))
        XCTAssertEqual(accounts.authenticate(authorizationHeader: "Bearer"), .failure(.invalidToken))
        XCTAssertEqual(accounts.authenticate(authorizationHeader: "Bearer garbage"), .failure(.invalidToken))
        let expired = signer.sign(userID: "6fc4098f-58e0-4b2f-8494-c932d968b32a", issuedAt: now - 3600)
        XCTAssertEqual(accounts.authenticate(authorizationHeader: "Bearer \(expired)"), .failure(.invalidToken))
        let notAUUID = signer.sign(userID: "admin", issuedAt: now)
        XCTAssertEqual(accounts.authenticate(authorizationHeader: "Bearer \(notAUUID)"), .failure(.invalidToken))
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
