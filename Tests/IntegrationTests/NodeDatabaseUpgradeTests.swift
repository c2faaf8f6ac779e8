import Foundation
import JSON
import XCTest

/// A database shaped and filled by the Node.js server, upgraded in place by schema.sql: its
/// users log in with their bcrypt hashes and read their history, in the order it had.
final class NodeDatabaseUpgradeTests: XCTestCase {
    // Made by the Node original's dependencies: bcrypt 6 (`hashSync("hunter2-node", 10)`).
    let nodeHash = "$2b$10$9qj1kco3ePQqNPjfvupcvuHbLuC9nlQvJrKbMDrhm2ukK.CYOxXdG"
    // crypt_blowfish's test vector, a $2a$ hash as older bcrypt libraries wrote them.
    let legacy2aHash = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
    let arkt = "6fc4098f-58e0-4b2f-8494-c932d968b32a"
    let sp = "9170fa4d-33e3-49db-a16f-d9c8062cdc78"
    let old = "8d0fcabd-6f7f-4499-abfe-e51cb8ff45e9"

    func testTheNodeServersDatabaseKeepsWorking() throws {
        let database = try TestEnvironment.current().createDatabase("node")
        let connection = try database.connect()
        // Exactly the Node README's schema (no username, no default id), with rows like its code wrote.
        try connection.executeScript("""
            CREATE TABLE users (id UUID PRIMARY KEY, email TEXT UNIQUE NOT NULL, password TEXT NOT NULL);
            CREATE TABLE messages (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), sender_id UUID, receiver_id UUID,
                                   content TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
            """)
        try connection.query("INSERT INTO users (id, email, password) VALUES ($1, 'arkt@example.com', $2), ($3, 'sp@example.com', $2), ($4, 'Old@Example.com', $5)",
                             [arkt, nodeHash, sp, old, legacy2aHash])
        // Inserted out of time order: history must follow created_at for rows from before the upgrade.
        try connection.query("""
            INSERT INTO messages (sender_id, receiver_id, content, created_at) VALUES
              ($1, $2, 'third', '2026-01-16 17:10:00.5'),
              ($1, $2, 'first', '2026-01-16 17:04:58.123456'),
              ($2, $1, 'second', '2026-01-16 17:05:00'),
              ($1, $3, 'other conversation', '2026-01-16 17:06:00')
            """, [arkt, sp, old])

        try database.migrate()
        try database.migrate()  // idempotent

        let columns = try connection.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'messages' ORDER BY ordinal_position")
        XCTAssertEqual(columns.rows.map { $0[0] }, ["id", "sender_id", "receiver_id", "content", "created_at", "seq", "client_id"])
        XCTAssertEqual(try connection.query("SELECT count(*)::text AS n FROM messages WHERE seq IS NULL").value(0, "n"), "0")

        let server = try database.startServer()
        defer { server.stop() }
        let client = HTTPTestClient(port: server.port)

        let login = try client.postJSON("/api/auth/login", ["email": "arkt@example.com", "password": "hunter2-node"])
        XCTAssertEqual(login.status, 200, login.text)
        XCTAssertEqual(login.json?["user"], ["id": .string(arkt), "email": "arkt@example.com", "username": nil])
        let token = try XCTUnwrap(login.json?["token"]?.stringValue)
        XCTAssertEqual(try client.postJSON("/api/auth/login", ["email": "arkt@example.com", "password": "hunter2-nodE"]).status, 401)
        XCTAssertEqual(try client.postJSON("/api/auth/login", ["email": "old@example.com", "password": "U*U"]).status, 200, "$2a$ hashes too")

        let history = try client.get("/api/messages/\(sp)", token: token)
        XCTAssertEqual(history.status, 200)
        let messages = try XCTUnwrap(history.json?.arrayValue)
        XCTAssertEqual(messages.map { $0["content"]?.stringValue }, ["first", "second", "third"])
        XCTAssertEqual(messages.map { $0["created_at"]?.stringValue }, ["2026-01-16T17:04:58.123Z", "2026-01-16T17:05:00.000Z", "2026-01-16T17:10:00.500Z"])

        // A row written afterwards without naming seq (as the Node server still would) goes last.
        try connection.query("INSERT INTO messages (sender_id, receiver_id, content, created_at) VALUES ($1, $2, 'after upgrade', '2020-01-01')", [sp, arkt])
        let after = try client.get("/api/messages/\(sp)", token: token).json?.arrayValue
        XCTAssertEqual(after?.last?["content"], "after upgrade")

        // New users get a generated id, and a Node user's email cannot be taken again in another case.
        let registered = try client.postJSON("/api/auth/register", ["username": "new", "email": "new@example.com", "password": "password1"])
        XCTAssertEqual(registered.status, 200, registered.text)
        XCTAssertEqual(try client.postJSON("/api/auth/register", ["username": "x", "email": "ARKT@example.com", "password": "password1"]).status, 409)
    }

    func testEmailsThatCollideInCaseDoNotBlockTheUpgrade() throws {
        let database = try TestEnvironment.current().createDatabase("nodecase")
        let connection = try database.connect()
        try connection.executeScript("CREATE TABLE users (id UUID PRIMARY KEY, username TEXT, email TEXT UNIQUE NOT NULL, password TEXT NOT NULL)")
        try connection.query("INSERT INTO users (id, email, password) VALUES ($1, 'Same@example.com', $2), ($3, 'same@example.com', $2)", [arkt, nodeHash, sp])
        try database.migrate()
        let server = try database.startServer()
        defer { server.stop() }
        let login = try HTTPTestClient(port: server.port).postJSON("/api/auth/login", ["email": "same@example.com", "password": "hunter2-node"])
        XCTAssertEqual(login.json?["user"]?["id"]?.stringValue, sp, "the exact match wins")
    }
}
