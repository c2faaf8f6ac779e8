import Foundation
import JSON
import PostgresClient
import XCTest

final class DatabaseReconnectTests: XCTestCase {
    func testTheServerReconnectsAfterItsDatabaseConnectionsAreKilled() throws {
        let environment = try TestEnvironment.current()
        let database = try environment.createDatabase("reconnect")
        try database.migrate()
        let server = try database.startServer()
        defer { server.stop() }
        let client = HTTPTestClient(port: server.port)
        XCTAssertEqual(try client.postJSON("/api/auth/register", ["username": "a", "email": "a@example.com", "password": "password1"]).status, 200)

        let name = String(database.url.split(separator: "/").last!)
        let admin = try PostgresConnection.connect(.url(environment.adminURL))
        let killed = try admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'chat-server'", [name])
        XCTAssertGreaterThan(killed.count, 0, "the server had connections to kill")

        // Answers may be 503 while it reconnects, never anything else, and it comes back.
        var statuses: [Int] = []
        for _ in 0..<100 {
            let status = try client.get("/healthz").status
            statuses.append(status)
            if status == 200 { break }
            usleep(100_000)
        }
        XCTAssertEqual(statuses.last, 200, "statuses seen: \(statuses)")
        XCTAssertTrue(statuses.allSatisfy { $0 == 200 || $0 == 503 }, "\(statuses)")
        XCTAssertEqual(try client.postJSON("/api/auth/login", ["email": "a@example.com", "password": "password1"]).status, 200)
    }
}
