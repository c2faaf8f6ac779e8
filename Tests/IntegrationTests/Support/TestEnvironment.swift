import Foundation
import PostgresClient
import XCTest

/// What `make test` provides: a throw-away PostgreSQL cluster, the server binary, the schema.
/// Run any other way, integration tests fail and say how to run them; they never skip.
struct TestEnvironment {
    let adminURL: String
    let serverBinary: String
    let schemaFile: String

    struct Missing: Error, CustomStringConvertible {
        let description = "integration tests need the PostgreSQL cluster and server binary that `make test` sets up "
            + "(TEST_DATABASE_URL, CHAT_SERVER_BIN, CHAT_SCHEMA_FILE): run them with `make test`"
    }

    static func current() throws -> TestEnvironment {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["TEST_DATABASE_URL"], let binary = environment["CHAT_SERVER_BIN"],
              let schema = environment["CHAT_SCHEMA_FILE"]
        else { throw Missing() }
        return TestEnvironment(adminURL: url, serverBinary: binary, schemaFile: schema)
    }

    /// A fresh, empty database of its own.
    func createDatabase(_ prefix: String) throws -> TestDatabase {
        let name = "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = try PostgresConnection.connect(.url(adminURL))
        try admin.executeScript("CREATE DATABASE \(name)")
        let base = adminURL[..<adminURL.lastIndex(of: "/")!]
        return TestDatabase(url: "\(base)/\(name)", environment: self)
    }
}

struct TestDatabase {
    let url: String
    let environment: TestEnvironment

    func connect() throws -> PostgresConnection {
        try PostgresConnection.connect(PostgresConnectionOptions.url(url).withSessionDefaults(applicationName: "integration-test"))
    }

    /// Applies schema.sql the way `make run` does: `ChatServer migrate`.
    func migrate() throws {
        let result = try ServerProcess.runToCompletion(environment.serverBinary, ["migrate", environment.schemaFile],
                                                       environment: ["DATABASE_URL": url])
        guard result.status == 0 else { throw ServerProcess.Failure(description: "migrate failed: \(result.output)") }
    }

    func startServer(_ environment: [String: String] = [:]) throws -> ServerProcess {
        try ServerProcess(binary: self.environment.serverBinary, databaseURL: url, environment: environment)
    }
}
