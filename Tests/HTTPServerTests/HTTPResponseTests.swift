import XCTest
@testable import HTTPServer

final class HTTPResponseTests: XCTestCase {
    private func text(_ response: HTTPResponse, keepAlive: Bool = true, headOnly: Bool = false) -> String {
        String(decoding: response.serialized(keepAlive: keepAlive, headOnly: headOnly, date: "Sat, 28 Nov 2026 01:00:00 GMT"), as: UTF8.self)
    }

    func testJSONAnswersCarryLengthDateAndConnection() {
        XCTAssertEqual(text(.json(200, ["status": "ok"])),
                       "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 15\r\n"
                       + "Date: Sat, 28 Nov 2026 01:00:00 GMT\r\nConnection: keep-alive\r\n\r\n{\"status\":\"ok\"}")
        XCTAssertTrue(text(.error(404, "Not found"), keepAlive: false).hasSuffix("Connection: close\r\n\r\n{\"error\":\"Not found\"}"))
    }

    func testHeadKeepsTheHeadersButNotTheBody() {
        let head = text(.json(200, ["a": 1]), headOnly: true)
        XCTAssertTrue(head.contains("Content-Length: 7\r\n"))
        XCTAssertTrue(head.hasSuffix("\r\n\r\n"))
    }

    func testNoContentAndSwitchingProtocolsHaveNoLength() {
        XCTAssertFalse(text(HTTPResponse(status: 204)).contains("Content-Length"))
        let upgrade = text(HTTPResponse(status: 101, headers: [("Upgrade", "websocket"), ("Connection", "Upgrade")]))
        XCTAssertFalse(upgrade.contains("Content-Length"))
        XCTAssertFalse(upgrade.contains("keep-alive"), "a 101 carries its own Connection: Upgrade")
        XCTAssertTrue(upgrade.hasSuffix("Connection: Upgrade\r\nDate: Sat, 28 Nov 2026 01:00:00 GMT\r\n\r\n"))
    }

    func testDatesAreIMFFixdate() {
        XCTAssertEqual(HTTPDateCache.format(0), "Thu, 01 Jan 1970 00:00:00 GMT")
        XCTAssertEqual(HTTPDateCache.format(1_784_768_000), "Thu, 23 Jul 2026 00:53:20 GMT")
        XCTAssertEqual(HTTPDateCache.format(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT")
        let current = HTTPDateCache().current
        XCTAssertTrue(current.hasSuffix(" GMT") && current.count == 29, current)
    }
}
