import WebSocket
import XCTest

final class WebSocketHandshakeTests: XCTestCase {
    func testAcceptValueFromRFC6455() {
        XCTAssertEqual(WebSocketHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    func testValidation() {
        var headers = ["upgrade": "websocket", "connection": "keep-alive, Upgrade", "sec-websocket-version": "13",
                       "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="]
        func check() -> Result<String, WebSocketHandshake.Refusal> {
            WebSocketHandshake.validate(method: "GET", minorVersion: 1) { headers[$0] }
        }
        XCTAssertEqual(try check().get(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        headers["sec-websocket-version"] = "8"
        guard case .failure(let refusal) = check() else { return XCTFail() }
        XCTAssertEqual(refusal.status, 426)
        XCTAssertEqual(refusal.headers["Sec-WebSocket-Version"], "13")
        headers["sec-websocket-version"] = "13"
        headers["sec-websocket-key"] = "c2hvcnQ="
        XCTAssertEqual(try? check().get(), nil)
        headers["sec-websocket-key"] = "dGhlIHNhbXBsZSBub25jZQ=="
        headers["upgrade"] = "h2c"
        XCTAssertEqual(try? check().get(), nil)
        headers["upgrade"] = "websocket"
        XCTAssertEqual(try? WebSocketHandshake.validate(method: "POST", minorVersion: 1) { headers[$0] }.get(), nil)
    }
}
