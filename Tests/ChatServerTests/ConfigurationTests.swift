import ChatCore
import HTTPServer
import ServerRuntime
import XCTest
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
        XCTAssertEqual(configuration.bcryptQuietThreads, configuration.workers > 1 ? 1 : 0, "the core left to the chat, while it is quiet")
        XCTAssertEqual(try Configuration(["BCRYPT_QUIET_THREADS": "0"]).bcryptQuietThreads, 0)
        XCTAssertEqual(configuration.allowedOrigins, .any, "every page, as the Node server")
        XCTAssertEqual(try Configuration(["ALLOWED_ORIGINS": "https://chat.example.com"]).allowedOrigins, .only(["https://chat.example.com"]))
    }

    func testSeveralProcessesSettings() throws {
        let defaults = try Configuration([:])
        XCTAssertEqual(defaults.instanceID, "")
        XCTAssertTrue(defaults.trustedProxies.isEmpty, "a client's X-Forwarded-For is believed only from a proxy named")
        let named = try Configuration(["INSTANCE_ID": "n2", "TRUSTED_PROXIES": "127.0.0.1, ::1"])
        XCTAssertEqual(named.instanceID, "n2")
        XCTAssertEqual(named.httpLimits.trustedProxies, try TrustedProxies(setting: "::1,127.0.0.1"))
        XCTAssertEqual(try Configuration(["INSTANCE_ID": ""]).instanceID, "")
        for bad in ["n.1", "with space", String(repeating: "x", count: 33), "é"] {
            XCTAssertThrowsError(try Configuration(["INSTANCE_ID": bad]), bad)
        }
        XCTAssertThrowsError(try Configuration(["TRUSTED_PROXIES": "nginx.local"]))
    }

    func testSocketEventLimitsByName() throws {
        XCTAssertEqual(try Configuration([:]).eventRateLimits, EventRateLimits.Settings())
        let limits = try Configuration(["MESSAGE_BURST": "5", "MESSAGES_PER_SECOND": "2", "TYPING_EVENT_BURST": "0", "TYPING_EVENTS_PER_SECOND": "9",
                                        "RECEIPT_BURST": "7", "RECEIPTS_PER_SECOND": "3", "OTHER_EVENT_BURST": "11", "OTHER_EVENTS_PER_SECOND": "4",
                                        "REFUSED_EVENTS_BEFORE_DISCONNECT": "12"]).eventRateLimits
        XCTAssertEqual(limits.messages, .init(burst: 5, perSecond: 2))
        XCTAssertEqual(limits.typing, .init(burst: 0, perSecond: 9))
        XCTAssertTrue(limits.typing.isOff)
        XCTAssertEqual(limits.receipts, .init(burst: 7, perSecond: 3))
        XCTAssertEqual(limits.other, .init(burst: 11, perSecond: 4))
        XCTAssertEqual(limits.refusalsBeforeDisconnect, 12)
        let caps = try Configuration(["SOCKETS_PER_USER": "0", "CONNECTIONS_PER_ADDRESS": "7", "NEW_CONNECTIONS_PER_ADDRESS_PER_SECOND": "3"])
        XCTAssertEqual(caps.eventRateLimits.socketsPerUser, 0)
        XCTAssertEqual(caps.connectionCaps.openPerAddress, 7)
        XCTAssertEqual(caps.connectionCaps.newPerSecond, 3)
        XCTAssertEqual(caps.connectionCaps.newBurst, 30)
        XCTAssertEqual(try Configuration([:]).connectionCaps, ConnectionCaps.Settings())
        for (key, value) in [("MESSAGES_PER_SECOND", "0"), ("MESSAGE_BURST", "-1"), ("REFUSED_EVENTS_BEFORE_DISCONNECT", "0"), ("RECEIPTS_PER_SECOND", "1.5"), ("CONNECTIONS_PER_ADDRESS", "0"), ("NEW_CONNECTIONS_PER_ADDRESS_PER_SECOND", "0")] {
            XCTAssertThrowsError(try Configuration([key: value])) { XCTAssertTrue("\($0)".contains(key), "\($0)") }
        }
    }

    func testRefusesNonsenseWithTheVariableNamed() {
        for (key, value) in [("PORT", "http"), ("PORT", "70000"), ("BCRYPT_COST", "3"), ("WORKERS", "0"), ("BCRYPT_THREADS", "0"), ("LOG_LEVEL", "loud"), ("LOG_FORMAT", "xml"), ("ALLOWED_ORIGINS", "chat.example.com")] {
            XCTAssertThrowsError(try Configuration([key: value])) { error in
                XCTAssertTrue("\(error)".contains(key), "\(error)")
            }
        }
    }
}
