import XCTest

@testable import ChatServer

final class DotEnvTests: XCTestCase {
    func testReadsTheLinesPeopleWrite() {
        let text = """
            # comment
            PORT=5001
            export JWT_SECRET="quoted # not a comment"
            DB_PASSWORD=Sukrit@123   # trailing comment
            SINGLE='lit\\eral $x'
            DOUBLE="a\\nb"
            EMPTY=
            SPACED = padded value\t
            MULTI="line one
            line two"
            not a line
            =novalue
            WINDOWS=crlf\r
            """
        let pairs = Dictionary(DotEnv.parse(text).map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        XCTAssertEqual(pairs["PORT"], "5001")
        XCTAssertEqual(pairs["JWT_SECRET"], "quoted # not a comment")
        XCTAssertEqual(pairs["DB_PASSWORD"], "Sukrit@123")
        XCTAssertEqual(pairs["SINGLE"], "lit\\eral $x")
        XCTAssertEqual(pairs["DOUBLE"], "a\nb")
        XCTAssertEqual(pairs["EMPTY"], "")
        XCTAssertEqual(pairs["SPACED"], "padded value")
        XCTAssertEqual(pairs["MULTI"], "line one\nline two")
        XCTAssertEqual(pairs["WINDOWS"], "crlf")
        XCTAssertEqual(pairs.count, 9)
    }

    func testTheNodeOriginalsEnvFile() {
        let text = "PORT=5001\nDB_USER=postgres\nDB_PASSWORD=Sukrit@123\nDB_HOST=localhost\nDB_PORT=5432\nDB_NAME=chat_app\nJWT_SECRET=supersecretkey\n"
        let configuration = try? Configuration(Configuration.variables(environment: [:], dotEnvText: text))
        XCTAssertEqual(configuration?.port, 5001)
        XCTAssertEqual(configuration?.jwtSecret, "supersecretkey")
        XCTAssertEqual(configuration?.database.keywords.map(\.key), ["host", "port", "user", "password", "dbname"])
        XCTAssertEqual(configuration?.database.keywords.first(where: { $0.key == "password" })?.value, "Sukrit@123")
        XCTAssertEqual(configuration?.databaseDescription, "postgres://postgres@localhost:5432/chat_app")
    }
}

final class ConfigurationTests: XCTestCase {
    func testEnvironmentWinsOverTheFile() throws {
        let variables = Configuration.variables(environment: ["PORT": "6000"], dotEnvText: "PORT=5001\nJWT_SECRET=s\n")
        let configuration = try Configuration(variables)
        XCTAssertEqual(configuration.port, 6000)
        XCTAssertEqual(configuration.jwtSecret, "s")
    }

    func testDatabaseURLWinsOverDBVariablesAndIsShownWithoutPassword() throws {
        let configuration = try Configuration(["DATABASE_URL": "postgres://chat:p%40ss@db:5433/chat", "DB_HOST": "ignored"])
        XCTAssertEqual(configuration.database.keywords.map(\.key), ["dbname"])
        XCTAssertEqual(configuration.databaseDescription, "postgres://chat:***@db:5433/chat")
    }

    func testDefaults() throws {
        let configuration = try Configuration([:])
        XCTAssertNil(configuration.jwtSecret)
        XCTAssertEqual(configuration.port, 5001)
        XCTAssertEqual(configuration.bcryptCost, 10)
        XCTAssertEqual(configuration.maxMessageBytes, 16_384)
        XCTAssertGreaterThanOrEqual(configuration.workers, 1)
        XCTAssertEqual(configuration.bcryptThreads, max(1, configuration.workers - 1), "one core left to the chat")
        XCTAssertEqual(try Configuration(["BCRYPT_THREADS": "3"]).bcryptThreads, 3)
    }

    func testRefusesNonsenseWithTheVariableNamed() {
        for (key, value) in [("PORT", "http"), ("PORT", "70000"), ("BCRYPT_COST", "3"), ("WORKERS", "0"), ("BCRYPT_THREADS", "0"), ("LOG_LEVEL", "loud")] {
            XCTAssertThrowsError(try Configuration([key: value])) { error in
                XCTAssertTrue("\(error)".contains(key), "\(error)")
            }
        }
    }
}
