import XCTest
@testable import ChatClient

final class ServerAddressTests: XCTestCase {
    func testReadsTheFormsPeopleType() throws {
        let cases: [(String, String, Int)] = [
            ("http://localhost:5001", "localhost", 5001), ("localhost:5301", "localhost", 5301), ("ws://127.0.0.1:9", "127.0.0.1", 9),
            ("http://example.com", "example.com", 80), ("http://example.com:8080/some/path", "example.com", 8080),
            ("http://[::1]:5001", "::1", 5001), ("[::1]", "::1", 80),
        ]
        for (text, host, port) in cases {
            let address = try ServerAddress(text)
            XCTAssertEqual(address.host, host, text)
            XCTAssertEqual(address.port, port, text)
        }
        XCTAssertEqual(try ServerAddress("http://[::1]:5001").hostAndPort, "[::1]:5001")
        XCTAssertEqual(try ServerAddress("localhost:5001").description, "http://localhost:5001")
    }

    func testRefusesWhatItCannotReachWithAReason() {
        for text in ["https://example.com", "wss://example.com", "ftp://example.com", "http://:5001", "http://host:0", "http://host:65536", "http://host:port", ""] {
            XCTAssertThrowsError(try ServerAddress(text), text) { error in
                XCTAssertFalse("\(error)".isEmpty)
            }
        }
        XCTAssertThrowsError(try ServerAddress("https://example.com")) { XCTAssertTrue("\($0)".contains("TLS")) }
    }
}
