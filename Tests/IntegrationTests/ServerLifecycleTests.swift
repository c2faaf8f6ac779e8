import Foundation
import JSON
import JWT
import XCTest

/// Start-up, configuration, database outages and shutdown of the real binary.
final class ServerLifecycleTests: XCTestCase {
    func testRefusesToStartWithoutAJWTSecret() throws {
        let environment = try TestEnvironment.current()
        let result = try ServerProcess.runToCompletion(environment.serverBinary, ["serve"], environment: ["DATABASE_URL": environment.adminURL])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.output.contains("JWT_SECRET is not set"), result.output)
    }

    func testRefusesABadSettingNamingItAndWhatItAccepts() throws {
        let environment = try TestEnvironment.current()
        for (setting, value, message) in [("PORT", "eighty", "PORT must be a whole number in 0…65535, not 'eighty'"),
                                          ("WORKERS", "0", "WORKERS must be a whole number in 1…256, not '0'"),
                                          ("CONNECTION_STATE_RECOVERY", "maybe", "CONNECTION_STATE_RECOVERY must be true or false, not 'maybe'"),
                                          ("LOG_LEVEL", "loud", "LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical, not 'loud'"),
                                          ("LOG_FORMAT", "xml", "LOG_FORMAT must be text or json, not 'xml'"),
                                          ("METRICS_TOKEN", "two words", "METRICS_TOKEN must be printable ASCII without spaces")] {
            for command in [["serve"], [], ["migrate", environment.schemaFile], ["address"]] {
                let result = try ServerProcess.runToCompletion(environment.serverBinary, command, environment: ["JWT_SECRET": "s", setting: value, "ENV_FILE": ""])
                XCTAssertEqual(result.status, 2, "\(command) \(setting)=\(value): \(result.output)")
                XCTAssertTrue(result.output.contains(message), result.output)
            }
        }
    }

    // MARK: - The command line

    /// Every setting .env.example explains is in `--help`, with its default where it has one.
    func testHelpListsEverySettingWithItsDefault() throws {
        let environment = try TestEnvironment.current()
        let help = try ServerProcess.runToCompletion(environment.serverBinary, ["--help"], environment: [:])
        XCTAssertEqual(help.status, 0, help.output)
        let root = URL(fileURLWithPath: environment.schemaFile).deletingLastPathComponent()
        let example = try String(contentsOf: root.appendingPathComponent(".env.example"), encoding: .utf8)
        let names = example.split(separator: "\n").compactMap { line -> String? in
            let text = line.hasPrefix("#") ? line.dropFirst() : line[...]
            guard let equals = text.firstIndex(of: "="), !text[..<equals].isEmpty,
                  text[..<equals].allSatisfy({ $0.isUppercase || $0 == "_" || $0.isNumber }) else { return nil }
            return String(text[..<equals])
        }
        XCTAssertGreaterThan(names.count, 40)
        for name in names + ["ENV_FILE"] {
            XCTAssertTrue(help.output.contains("  \(name)=") || help.output.contains("  \(name)  (default: "), "\(name) is not in --help:\n\(help.output)")
        }
        for shown in ["  PORT=5001\n", "  MESSAGE_QUEUE_LIMIT=20000\n", "  HOST=::\n", "  WORKERS  (default: one per CPU core)\n", "SUBCOMMANDS", "serve", "migrate", "address", "--version"] {
            XCTAssertTrue(help.output.contains(shown), "\(shown) is not in --help:\n\(help.output)")
        }
        XCTAssertFalse(help.output.contains("conformance"), "the tests' subcommand is not offered")
        XCTAssertTrue(help.output.split(separator: "\n").allSatisfy { $0.count < 80 }, "no line wrapped:\n\(help.output)")
        let subcommandHelp = try ServerProcess.runToCompletion(environment.serverBinary, ["migrate", "--help"], environment: [:])
        XCTAssertEqual(subcommandHelp.status, 0)
        XCTAssertTrue(subcommandHelp.output.contains("schema"), subcommandHelp.output)
    }

    func testVersion() throws {
        let environment = try TestEnvironment.current()
        let version = try ServerProcess.runToCompletion(environment.serverBinary, ["--version"], environment: [:])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(version.output.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, version.output)
    }

    func testAnUnknownSubcommandOrArgumentIsRefusedWithTheUsage() throws {
        let environment = try TestEnvironment.current()
        for arguments in [["serv"], ["serve", "--port", "80"], ["migrate", "a.sql", "b.sql"]] {
            let result = try ServerProcess.runToCompletion(environment.serverBinary, arguments, environment: ["JWT_SECRET": "s", "ENV_FILE": ""])
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.output)")
            XCTAssertTrue(result.output.contains("Error:") && result.output.contains("Usage:"), "\(arguments): \(result.output)")
        }
    }

    func testReadsItsSettingsFromTheEnvFile() throws {
        let environment = try TestEnvironment.current()
        let database = try environment.createDatabase("envfile")
        try database.migrate()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("envfile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let envFile = directory.appendingPathComponent(".env")
        try "# written by a test\nexport JWT_SECRET=\"from the file\"\nLOG_LEVEL=warning\n".write(to: envFile, atomically: true, encoding: .utf8)
        let server = try ServerProcess(binary: environment.serverBinary, databaseURL: database.url,
                                       environment: ["ENV_FILE": envFile.path, "JWT_SECRET": ""])
        defer { server.stop() }
        let client = HTTPTestClient(port: server.port)
        XCTAssertEqual(try client.postJSON("/api/auth/register", ["username": "a", "email": "a@example.com", "password": "password1"]).status, 200)
        let token = try XCTUnwrap(client.postJSON("/api/auth/login", ["email": "a@example.com", "password": "password1"]).json?["token"]?.stringValue)
        XCTAssertNoThrow(try JWTSigner(secret: "from the file").verify(token, now: Int64(Date().timeIntervalSince1970)))
    }

    /// `make chat-a` and `make chat-b` find the server `make run` started by asking this.
    func testAddressSaysWhereLocalClientsFindTheServerFromTheSameSettings() throws {
        let environment = try TestEnvironment.current()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("address-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "PORT=5301\n".write(to: directory.appendingPathComponent(".env"), atomically: true, encoding: .utf8)
        func address(_ variables: [String: String]) throws -> (status: Int32, output: String) {
            // .env is read from the working directory, as `make run` reads it.
            try ServerProcess.runToCompletion(environment.serverBinary, ["address"], environment: variables.merging(["ENV_FILE": ""]) { $1 },
                                              workingDirectory: directory.path)
        }
        XCTAssertEqual(try address([:]).output, "http://localhost:5301\n", "PORT from .env")
        XCTAssertEqual(try address(["PORT": "5302"]).output, "http://localhost:5302\n", "the environment wins")
        XCTAssertEqual(try address(["PORT": "5303", "HOST": "127.0.0.2"]).output, "http://127.0.0.2:5303\n")
        XCTAssertEqual(try address(["PORT": "5304", "HOST": "::1"]).output, "http://[::1]:5304\n")
        XCTAssertEqual(try address(["PORT": "5305", "HOST": "0.0.0.0"]).output, "http://localhost:5305\n")
        let kernelChosen = try address(["PORT": "0"])
        XCTAssertEqual(kernelChosen.status, 1)
        XCTAssertTrue(kernelChosen.output.contains("PORT=0"), kernelChosen.output)
    }

    func testWithoutADatabaseItServesClearErrorsAndRecovers() throws {
        let environment = try TestEnvironment.current()
        // A port where nothing listens.
        let server = try ServerProcess(binary: environment.serverBinary, databaseURL: "postgres://chat:x@127.0.0.1:1/chat")
        defer { server.stop() }
        let client = HTTPTestClient(port: server.port)
        let health = try client.get("/healthz")
        XCTAssertEqual(health.status, 503)
        XCTAssertEqual(health.json?["status"], "unavailable")
        let login = try client.postJSON("/api/auth/login", ["email": "a@example.com", "password": "password1"])
        XCTAssertEqual(login.status, 503)
        XCTAssertFalse(login.text.contains("127.0.0.1"), "no database text reaches a client: \(login.text)")
        let register = try client.postJSON("/api/auth/register", ["username": "a", "email": "a@example.com", "password": "password1"])
        XCTAssertEqual(register.status, 503)
    }

    func testGracefulShutdownFinishesWhatIsInFlight() throws {
        let environment = try TestEnvironment.current()
        let database = try environment.createDatabase("shutdown")
        try database.migrate()
        let server = try database.startServer()
        // A request whose answer waits on bcrypt and the database while SIGTERM arrives.
        let connection = try RawConnection(port: server.port)
        let body = #"{"username":"late","email":"late@example.com","password":"password1"}"#
        connection.send("POST /api/auth/register HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        kill(server.process.processIdentifier, SIGTERM)
        let responses = connection.receiveResponses(1)
        XCTAssertEqual(responses.first?.status, 200)
        XCTAssertEqual(responses.first?.header("connection"), "close")
        XCTAssertEqual(server.stop(), 0)
        let stored = try database.connect().query("SELECT count(*)::text AS n FROM users WHERE email = 'late@example.com'")
        XCTAssertEqual(stored.value(0, "n"), "1")
    }
}
