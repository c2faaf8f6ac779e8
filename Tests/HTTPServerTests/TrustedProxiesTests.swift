@testable import HTTPServer
import XCTest

/// Whose X-Forwarded-For is believed, and which address in it is the client.
final class TrustedProxiesTests: XCTestCase {
    private func request(forwardedFor values: [String]) -> HTTPRequest {
        HTTPRequest(method: "GET", target: "/", minorVersion: 1, headers: values.map { ("x-forwarded-for", $0) }, body: [])
    }

    func testTheSettingIsAListOfAddresses() throws {
        XCTAssertTrue(try TrustedProxies(setting: "").isEmpty)
        XCTAssertFalse(try TrustedProxies(setting: "127.0.0.1, ::1").isEmpty)
        for bad in ["localhost", "10.0.0.0/8", "1.2.3", "::g", "127.0.0.1 10.0.0.1", String(repeating: "1", count: 60)] {
            XCTAssertThrowsError(try TrustedProxies(setting: bad), bad)
        }
    }

    func testOnlyATrustedPeersHeaderIsBelievedFromTheRightPastOtherProxies() throws {
        let proxies = try TrustedProxies(setting: "127.0.0.1,10.0.0.2")
        // A client's own header, straight to the server: ignored.
        XCTAssertEqual(proxies.client(of: request(forwardedFor: ["203.0.113.9"]), peer: "198.51.100.7"), "198.51.100.7")
        // Through nginx: the address nginx appended.
        XCTAssertEqual(proxies.client(of: request(forwardedFor: ["203.0.113.9"]), peer: "127.0.0.1"), "203.0.113.9")
        // A forged entry further left is never reached; trusted hops on the right are skipped.
        XCTAssertEqual(proxies.client(of: request(forwardedFor: ["6.6.6.6, 203.0.113.9, 10.0.0.2"]), peer: "127.0.0.1"), "203.0.113.9")
        XCTAssertEqual(proxies.client(of: request(forwardedFor: ["6.6.6.6", "203.0.113.9"]), peer: "127.0.0.1"), "203.0.113.9", "several headers are one list")
        XCTAssertEqual(proxies.client(of: request(forwardedFor: ["2001:DB8::1"]), peer: "127.0.0.1"), "2001:db8::1", "one spelling")
        XCTAssertEqual(proxies.client(of: request(forwardedFor: ["::ffff:203.0.113.9"]), peer: "127.0.0.1"), "203.0.113.9")
        // Nothing usable: the connection's address.
        XCTAssertEqual(proxies.client(of: request(forwardedFor: []), peer: "127.0.0.1"), "127.0.0.1")
        XCTAssertEqual(proxies.client(of: request(forwardedFor: ["unknown"]), peer: "127.0.0.1"), "127.0.0.1")
        XCTAssertEqual(proxies.client(of: request(forwardedFor: ["10.0.0.2, 127.0.0.1"]), peer: "127.0.0.1"), "127.0.0.1")
        XCTAssertEqual(TrustedProxies.none.client(of: request(forwardedFor: ["203.0.113.9"]), peer: "127.0.0.1"), "127.0.0.1")
    }
}
