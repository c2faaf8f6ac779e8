import Foundation
import Base64
import JSON
import JWT
import XCTest

/// CONTRACT.md's REST API against the real server and a real PostgreSQL: every route, every
/// error case, and CORS.
final class RESTContractTests: XCTestCase {
    nonisolated(unsafe) static var server: ServerProcess?
    nonisolated(unsafe) static var database: TestDatabase?
    var client: HTTPTestClient!
    let signer = JWTSigner(secret: IntegrationSecrets.jwtSecret)

    override func setUpWithError() throws {
        if Self.server == nil {
            let database = try TestEnvironment.current().createDatabase("rest")
            try database.migrate()
            Self.database = database
            Self.server = try database.startServer()
        }
        client = HTTPTestClient(port: Self.server!.port)
    }

    override class func tearDown() {
        if let server {
            XCTAssertEqual(server.stop(), 0, "graceful shutdown exits 0; the server said: \(server.output)")
        }
        server = nil
    }

    private func uniqueEmail(_ name: String = "user") -> String { "\(name)-\(UUID().uuidString.prefix(8))@example.com" }

    /// Registers and logs in a fresh user; returns its id and token.
    private func makeUser(_ name: String = "user", password: String = "password1") throws -> (id: String, email: String, token: String) {
        let email = uniqueEmail(name)
        let registered = try client.postJSON("/api/auth/register", ["username": .string(name), "email": .string(email), "password": .string(password)])
        XCTAssertEqual(registered.status, 200, registered.text)
        let login = try client.postJSON("/api/auth/login", ["email": .string(email), "password": .string(password)])
        XCTAssertEqual(login.status, 200, login.text)
        let token = try XCTUnwrap(login.json?["token"]?.stringValue)
        let id = try XCTUnwrap(login.json?["user"]?["id"]?.stringValue)
        return (id, email, token)
    }

    private func insertMessage(from: String, to: String, _ content: String) throws {
        try Self.database!.connect().query("INSERT INTO messages (sender_id, receiver_id, content) VALUES ($1, $2, $3)", [from, to, content])
    }

    // MARK: - Register

    func testRegisterAnswersTheNodeShapePlusTheUser() throws {
        let email = uniqueEmail()
        let response = try client.postJSON("/api/auth/register", ["username": "Zoë 🚀", "email": .string(email), "password": "password1"])
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.header("content-type"), "application/json; charset=utf-8")
        XCTAssertEqual(response.header("access-control-allow-origin"), "*")
        XCTAssertEqual(response.json?["message"], "User registered")
        XCTAssertEqual(response.json?["user"]?["email"]?.stringValue, email)
        XCTAssertEqual(response.json?["user"]?["username"], "Zoë 🚀")
        XCTAssertNotNil(response.json?["user"]?["id"]?.stringValue.flatMap(UUID.init(uuidString:)))
        let stored = try Self.database!.connect().query("SELECT password FROM users WHERE email = $1", [email])
        XCTAssertTrue(stored.value(0, "password")?.hasPrefix("$2b$04$") ?? false, "bcrypt $2b$ at BCRYPT_COST")
    }

    func testDuplicateEmailIs409WhateverItsCaseAndShowsNoDatabaseText() throws {
        let email = uniqueEmail()
        XCTAssertEqual(try client.postJSON("/api/auth/register", ["username": "a", "email": .string(email), "password": "password1"]).status, 200)
        for variant in [email, email.uppercased(), "  \(email) "] {
            let again = try client.postJSON("/api/auth/register", ["username": "b", "email": .string(variant), "password": "password2"])
            XCTAssertEqual(again.status, 409)
            XCTAssertEqual(again.json, ["error": "Email already registered"])
        }
    }

    func testRegistrationInputErrorsAre400WithAReason() throws {
        let cases: [(JSONValue, String)] = [
            (["email": .string(uniqueEmail()), "password": "password1"], "username is required"),
            (["username": "a", "password": "password1"], "email is required"),
            (["username": "a", "email": .string(uniqueEmail())], "password is required"),
            (["username": "a", "email": "no-at-sign", "password": "password1"], "email must contain exactly one @"),
            (["username": "a", "email": "a@localhost", "password": "password1"], "email needs a domain with a dot, like example.com"),
            (["username": "a", "email": .string(uniqueEmail()), "password": "1234567"], "password must be at least 8 bytes"),
            (["username": "a", "email": .string(uniqueEmail()), "password": .string(String(repeating: "x", count: 73))],
             "password must be at most 72 bytes (bcrypt ignores the rest)"),
            (["username": .string(String(repeating: "n", count: 65)), "email": .string(uniqueEmail()), "password": "password1"],
             "username must be at most 64 characters"),
            (["username": ["nested"], "email": .string(uniqueEmail()), "password": "password1"], "username must be a string, not array"),
            ([1, 2], "request body must be a JSON object"),
        ]
        for (body, message) in cases {
            let response = try client.postJSON("/api/auth/register", body)
            XCTAssertEqual(response.status, 400, "\(body)")
            XCTAssertEqual(response.json, ["error": .string(message)], "\(body)")
        }
    }

    func testBodiesThatAreNotJSONAre400Or415() throws {
        let malformed = try client.request("POST", "/api/auth/register", headers: ["Content-Type": "application/json"], body: Array("{\"username\":".utf8))
        XCTAssertEqual(malformed.status, 400)
        XCTAssertTrue(malformed.json?["error"]?.stringValue?.hasPrefix("Malformed JSON") ?? false, malformed.text)
        let empty = try client.request("POST", "/api/auth/login", headers: ["Content-Type": "application/json"], body: [])
        XCTAssertEqual(empty.status, 400)
        let form = try client.request("POST", "/api/auth/login", headers: ["Content-Type": "application/x-www-form-urlencoded"], body: Array("email=a".utf8))
        XCTAssertEqual(form.status, 415)
        XCTAssertEqual(form.json?["error"], "Content-Type must be application/json")
        let binary = try client.request("POST", "/api/auth/login", headers: ["Content-Type": "application/json"], body: [0xFF, 0xFE, 0x00, 0x7B])
        XCTAssertEqual(binary.status, 400)
    }

    // MARK: - Login

    func testLoginGivesAJsonwebtokenShapedToken() throws {
        let user = try makeUser("ann")
        let parts = user.token.split(separator: ".")
        XCTAssertEqual(parts.count, 3)
        XCTAssertEqual(Base64.decodeURL(Array(parts[0].utf8)).map { String(decoding: $0, as: UTF8.self) }, #"{"alg":"HS256","typ":"JWT"}"#)
        let payload = try JSONParser.parse(XCTUnwrap(Base64.decodeURL(Array(parts[1].utf8))))
        // Part 1's claims first; then this server's own (new fields, which jsonwebtoken ignores):
        // the token generation that revocation moves on, and when the password was given.
        XCTAssertEqual(payload.objectValue?.members.map(\.key), ["id", "iat", "exp", "gen", "auth_time"])
        XCTAssertEqual(payload["gen"]?.numberValue, 0)
        XCTAssertEqual(payload["auth_time"]?.numberValue, payload["iat"]?.numberValue)
        XCTAssertEqual(payload["id"]?.stringValue, user.id)
        XCTAssertEqual(payload["exp"]?.numberValue, payload["iat"]?.numberValue.map { $0 + 3600 })
        XCTAssertNoThrow(try signer.verify(user.token, now: Int64(Date().timeIntervalSince1970)))
    }

    func testLoginIsCaseInsensitiveOnEmailButExactOnPassword() throws {
        let user = try makeUser("bob", password: "Pässword-1")
        let ok = try client.postJSON("/api/auth/login", ["email": .string(" \(user.email.uppercased()) "), "password": "Pässword-1"])
        XCTAssertEqual(ok.status, 200)
        // The same text in decomposed form (a + combining diaeresis) is another password.
        let decomposed = try client.postJSON("/api/auth/login", ["email": .string(user.email), "password": "Pa\u{308}ssword-1"])
        XCTAssertEqual(decomposed.status, 401)
    }

    func testLoginFailuresAre401InvalidCredentials() throws {
        let user = try makeUser()
        for body: JSONValue in [["email": .string(user.email), "password": "wrong-password"],
                                ["email": "nobody-here@example.com", "password": "password1"],
                                ["email": "not an email", "password": "password1"]] {
            let response = try client.postJSON("/api/auth/login", body)
            XCTAssertEqual(response.status, 401)
            XCTAssertEqual(response.json, ["message": "Invalid credentials"])
        }
        let missing = try client.postJSON("/api/auth/login", ["email": .string(user.email)])
        XCTAssertEqual(missing.status, 400)
        XCTAssertEqual(missing.json, ["error": "password is required"])
    }

    // MARK: - History

    func testHistoryIsBothDirectionsOldestFirstWithLimitAndOffset() throws {
        let ann = try makeUser("ann"), bob = try makeUser("bob"), eve = try makeUser("eve")
        try insertMessage(from: ann.id, to: bob.id, "1 ann→bob")
        try insertMessage(from: bob.id, to: ann.id, "2 bob→ann")
        try insertMessage(from: eve.id, to: ann.id, "eve→ann, another conversation")
        try insertMessage(from: ann.id, to: bob.id, "3 ann→bob")

        let all = try client.get("/api/messages/\(bob.id)", token: ann.token)
        XCTAssertEqual(all.status, 200)
        let messages = try XCTUnwrap(all.json?.arrayValue)
        XCTAssertEqual(messages.map { $0["content"]?.stringValue }, ["1 ann→bob", "2 bob→ann", "3 ann→bob"])
        // Part 1's fields in the Node server's order, then the stream cursor (Part 2).
        XCTAssertEqual(messages[0].objectValue?.members.map(\.key), ["id", "sender_id", "receiver_id", "content", "created_at", "cursor"])
        XCTAssertEqual(messages[1]["sender_id"]?.stringValue, bob.id)
        XCTAssertEqual(messages[1]["receiver_id"]?.stringValue, ann.id)
        let createdAt = try XCTUnwrap(messages[0]["created_at"]?.stringValue)
        XCTAssertNotNil(createdAt.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression), createdAt)

        let fromBob = try client.get("/api/messages/\(ann.id.uppercased())", token: bob.token)
        XCTAssertEqual(fromBob.json?.arrayValue?.count, 3, "the same conversation from the other side")
        let page = try client.get("/api/messages/\(bob.id)?limit=1&offset=1", token: ann.token)
        XCTAssertEqual(page.json?.arrayValue?.map { $0["content"]?.stringValue }, ["2 bob→ann"])
        let junk = try client.get("/api/messages/\(bob.id)?limit=abc&offset=-4", token: ann.token)
        XCTAssertEqual(junk.json?.arrayValue?.count, 3, "junk limit means the default, negative offset 0")
    }

    func testHistoryLimitIsClampedTo100() throws {
        let ann = try makeUser("ann"), bob = try makeUser("bob")
        let connection = try Self.database!.connect()
        try connection.query("INSERT INTO messages (sender_id, receiver_id, content) SELECT $1, $2, 'm' || n FROM generate_series(1, 130) n", [ann.id, bob.id])
        XCTAssertEqual(try client.get("/api/messages/\(bob.id)?limit=1000", token: ann.token).json?.arrayValue?.count, 100)
        XCTAssertEqual(try client.get("/api/messages/\(bob.id)", token: ann.token).json?.arrayValue?.count, 20)
        XCTAssertEqual(try client.get("/api/messages/\(bob.id)?offset=125", token: ann.token).json?.arrayValue?.count, 5)
    }

    func testHistoryPagesFromTheNewestEndWithBeforeAndAfter() throws {
        let ann = try makeUser("ann"), bob = try makeUser("bob"), eve = try makeUser("eve")
        let connection = try Self.database!.connect()
        try connection.query("INSERT INTO messages (sender_id, receiver_id, content) SELECT $1, $2, 'm' || n FROM generate_series(0, 49) n ORDER BY n",
                             [ann.id, bob.id])
        try insertMessage(from: eve.id, to: ann.id, "another conversation")
        func contents(_ query: String, asBob: Bool = false) throws -> [String] {
            let response = try client.get("/api/messages/\(asBob ? ann.id : bob.id)?\(query)", token: asBob ? bob.token : ann.token)
            XCTAssertEqual(response.status, 200, response.text)
            return response.json?.arrayValue?.compactMap { $0["content"]?.stringValue } ?? []
        }
        func id(_ content: String) throws -> String {
            let all = try client.get("/api/messages/\(bob.id)?limit=100", token: ann.token).json?.arrayValue ?? []
            return try XCTUnwrap(all.first { $0["content"]?.stringValue == content }?["id"]?.stringValue)
        }

        XCTAssertEqual(try contents("limit=3&order=desc"), ["m49", "m48", "m47"], "the latest page")
        XCTAssertEqual(try contents("limit=3&order=desc&before=\(try id("m47"))"), ["m46", "m45", "m44"], "and back from there")
        XCTAssertEqual(try contents("limit=3&order=desc&before=\(try id("m1"))"), ["m0"])
        XCTAssertEqual(try contents("limit=3&after=\(try id("m46"))"), ["m47", "m48", "m49"])
        XCTAssertEqual(try contents("after=\(try id("m49"))"), [], "nothing new")
        XCTAssertEqual(try contents("before=\(try id("m14"))&after=\(try id("m10"))&order=asc"), ["m11", "m12", "m13"])
        XCTAssertEqual(try contents("limit=2&order=desc&before=\(try id("m10"))", asBob: true), ["m9", "m8"], "the same from the other side")
        XCTAssertEqual(try contents("limit=2"), ["m0", "m1"], "without the new parameters: Part 1's answer")

        let eveMessage = try XCTUnwrap(client.get("/api/messages/\(eve.id)", token: ann.token).json?.arrayValue?.first?["id"]?.stringValue)
        for (query, error) in [
            ("order=sideways", "order must be asc or desc, not 'sideways'"),
            ("before=123", "before must be the id of a message in this conversation or a cursor"),
            ("after=\(eveMessage)", "after must be the id of a message in this conversation"),
            ("before=\(UUID().uuidString)", "before must be the id of a message in this conversation"),
        ] {
            let response = try client.get("/api/messages/\(bob.id)?\(query)", token: ann.token)
            XCTAssertEqual(response.status, 400, query)
            XCTAssertEqual(response.json?["error"]?.stringValue, error, query)
        }
    }

    func testHistoryAuthErrors() throws {
        let ann = try makeUser("ann")
        let path = "/api/messages/\(ann.id)"
        let none = try client.get(path)
        XCTAssertEqual(none.status, 401)
        XCTAssertEqual(none.json, ["message": "No token provided"])
        let now = Int64(Date().timeIntervalSince1970)
        let forged = JWTSigner(secret: "some other secret").sign(userID: ann.id, issuedAt: now)
        let expired = signer.sign(userID: ann.id, issuedAt: now - 3601)
        let noExp = signer.sign(payload: ["id": .string(ann.id), "iat": .number(Double(now))])
        let algNone = Base64.encodeURL(Array(#"{"alg":"none","typ":"JWT"}"#.utf8)) + "." + Base64.encodeURL(Array(#"{"id":"\#(ann.id)","exp":9999999999}"#.utf8)) + "."
        for token in [forged, expired, noExp, algNone, "garbage", String(ann.token.dropLast(3))] {
            let response = try client.get(path, token: token)
            XCTAssertEqual(response.status, 403, token)
            XCTAssertEqual(response.json, ["message": "Invalid token"])
        }
        let badID = try client.get("/api/messages/not-a-uuid", token: ann.token)
        XCTAssertEqual(badID.status, 400)
        XCTAssertEqual(badID.json, ["error": "userId must be a UUID"])
    }

    // MARK: - User lookup, health, routing, CORS

    func testUserLookupByEmail() throws {
        let ann = try makeUser("ann"), bob = try makeUser("bob")
        let found = try client.get("/api/users?email=\(bob.email.uppercased().addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)", token: ann.token)
        XCTAssertEqual(found.status, 200)
        XCTAssertEqual(found.json, ["id": .string(bob.id), "email": .string(bob.email), "username": "bob"])
        let missing = try client.get("/api/users?email=nobody%40example.com", token: ann.token)
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.json, ["error": "User not found"])
        XCTAssertEqual(try client.get("/api/users", token: ann.token).status, 400)
        XCTAssertEqual(try client.get("/api/users?email=\(bob.email)").status, 401)
    }

    func testHealth() throws {
        let health = try client.get("/healthz")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.json, ["status": "ok"])
        let head = try client.request("HEAD", "/healthz")
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.body, [])
    }

    func testUnknownRoutesAre404AndWrongMethods405() throws {
        let unknown = try client.get("/api/nothing")
        XCTAssertEqual(unknown.status, 404)
        XCTAssertNotNil(unknown.json?["error"]?.stringValue)
        XCTAssertEqual(unknown.header("access-control-allow-origin"), "*")
        let wrong = try client.get("/api/auth/login")
        XCTAssertEqual(wrong.status, 405)
        XCTAssertEqual(wrong.header("allow"), "POST, OPTIONS")
        XCTAssertNotNil(wrong.json?["error"]?.stringValue)
        XCTAssertEqual(try client.request("DELETE", "/api/messages/\(UUID().uuidString)").status, 405)
    }

    /// On the REST routes and on the Socket.IO path alike (a browser's polling client with
    /// extra headers asks first), as the Node server's global `cors()` answers them.
    func testCORSPreflightLikeTheCorsPackage() throws {
        for target in ["/api/auth/login", "/socket.io/?EIO=4&transport=polling", "/socket.io?EIO=4&transport=polling"] {
            let preflight = try client.request("OPTIONS", target, headers: [
                "Origin": "http://app.example", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,authorization",
            ])
            XCTAssertEqual(preflight.status, 204, target)
            XCTAssertEqual(preflight.header("access-control-allow-origin"), "*", target)
            XCTAssertEqual(preflight.header("access-control-allow-methods"), "GET,HEAD,PUT,PATCH,POST,DELETE", target)
            XCTAssertEqual(preflight.header("access-control-allow-headers"), "content-type,authorization", target)
            XCTAssertEqual(preflight.body, [], target)
        }
    }
}
