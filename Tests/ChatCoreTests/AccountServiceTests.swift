import CLinux
import ChatCore
import JSON
import JWT
import Synchronization
import XCTest

/// The account and history services against the in-memory store.
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
}

final class MessageServiceTests: XCTestCase {
    func testParseIntLikeJavaScript() {
        let cases: [(String?, Int?)] = [(nil, nil), ("", nil), ("abc", nil), ("42", 42), ("  7x", 7), ("-3", -3), ("+5", 5), ("1e3", 1),
                                        ("3.9", 3), ("99999999999999999999999", Int.max), ("٣", nil)]
        for (text, expected) in cases {
            XCTAssertEqual(MessageService.parseIntLikeJavaScript(text), expected, text ?? "nil")
        }
    }

    func testHistoryPagesAndClamps() {
        let store = InMemoryChatStore(makeID: { "id" })
        let me = "00000000-0000-4000-8000-000000000001", you = "00000000-0000-4000-8000-000000000002"
        for i in 0..<150 {
            let (from, to) = i % 2 == 0 ? (me, you) : (you, me)
            store.addMessage(ChatMessage(id: "m\(i)", senderID: from, receiverID: to, content: "\(i)", createdAt: nil))
        }
        store.addMessage(ChatMessage(id: "other", senderID: me, receiverID: "00000000-0000-4000-8000-000000000003", content: "x", createdAt: nil))
        let service = MessageService(store: store)
        func page(_ limit: String?, _ offset: String?) -> [String] {
            let box = Mutex<[String]>([])
            service.history(callerID: me, otherID: you.uppercased(), limit: limit, offset: offset) { result in
                box.withLock { $0 = (try? result.get().map(\.id)) ?? ["error"] }
            }
            return box.withLock { $0 }
        }
        XCTAssertEqual(page(nil, nil), (0..<20).map { "m\($0)" })
        XCTAssertEqual(page("2", "5"), ["m5", "m6"])
        XCTAssertEqual(page("1000", nil).count, 100)
        XCTAssertEqual(page("0", nil).count, 20, "0 means the default, as parseInt(x) || 20 does")
        XCTAssertEqual(page("-5", nil).count, 1)
        XCTAssertEqual(page("x", "-10").count, 20)
        XCTAssertEqual(page("5", "148"), ["m148", "m149"])
        let box = Mutex<ServiceError?>(nil)
        service.history(callerID: me, otherID: "not-a-uuid", limit: nil, offset: nil) { result in
            if case .failure(let error) = result { box.withLock { $0 = error } }
        }
        XCTAssertEqual(box.withLock { $0 }, .invalidInput("userId must be a UUID"))
    }
}

final class WorkQueueTests: XCTestCase {
    func testRunsEveryJobAtALowerPriorityAndRefusesPastItsLimit() {
        let queue = WorkQueue(label: "test-work", limit: 4, threads: 2, niceness: 10)
        let gate = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var niceness: [Int32] = []
        }
        let seen = Seen()
        for _ in 0..<4 {
            XCTAssertTrue(queue.submit {
                gate.wait()
                let value = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(gettid()))
                seen.lock.lock(); seen.niceness.append(value); seen.lock.unlock()
                done.signal()
            })
        }
        XCTAssertFalse(queue.submit {}, "a fifth job waits beyond the limit of 4")
        for _ in 0..<4 { gate.signal() }
        for _ in 0..<4 { XCTAssertEqual(done.wait(timeout: .now() + 5), .success) }
        XCTAssertEqual(seen.niceness, [10, 10, 10, 10])
        // Finished jobs free their places.
        let again = DispatchSemaphore(value: 0)
        usleep(50_000)
        XCTAssertTrue(queue.submit { again.signal() })
        XCTAssertEqual(again.wait(timeout: .now() + 5), .success)
    }
}
