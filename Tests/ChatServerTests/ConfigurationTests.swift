import XCTest
import HTTPServer
@testable import ChatServer

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
        XCTAssertEqual(configuration.allowedOrigins, .any, "every page, as the Node server")
        XCTAssertEqual(try Configuration(["ALLOWED_ORIGINS": "https://chat.example.com"]).allowedOrigins, .only(["https://chat.example.com"]))
    }

    func testRefusesNonsenseWithTheVariableNamed() {
        for (key, value) in [("PORT", "http"), ("PORT", "70000"), ("BCRYPT_COST", "3"), ("WORKERS", "0"), ("BCRYPT_THREADS", "0"), ("LOG_LEVEL", "loud"), ("ALLOWED_ORIGINS", "chat.example.com")] {
            XCTAssertThrowsError(try Configuration([key: value])) { error in
                XCTAssertTrue("\(error)".contains(key), "\(error)")
            }
        }
    }
}
