import XCTest
@testable import ChatClient

final class HTTPResponseHeadTests: XCTestCase {
    private let response = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-Empty:\r\n\r\n{}".utf8)

    func testParsesStatusAndHeadersWithLowerCaseNames() throws {
        let (head, length) = try XCTUnwrap(HTTPResponseHead.parse(response))
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.headers, ["content-type": "application/json", "content-length": "2", "x-empty": ""])
        XCTAssertEqual(length, response.count - 2, "the body is not part of the head")
        XCTAssertEqual(head.bodyFraming(headOnly: false), .length(2))
        XCTAssertEqual(head.bodyFraming(headOnly: true), .none)
    }

    func testWaitsForTheBlankLineAtEveryLength() throws {
        for length in 0..<(response.count - 2) {
            XCTAssertNil(try HTTPResponseHead.parse(Array(response[..<length])), "\(length) bytes")
        }
    }

    func testTellsHowTheBodyIsDelimited() throws {
        func framing(_ text: String) throws -> HTTPResponseHead.BodyFraming {
            try XCTUnwrap(HTTPResponseHead.parse(Array(text.utf8))).head.bodyFraming(headOnly: false)
        }
        XCTAssertEqual(try framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), .chunked)
        XCTAssertEqual(try framing("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"), .none)
        XCTAssertEqual(try framing("HTTP/1.1 101 Switching Protocols\r\n\r\n"), .none)
        XCTAssertEqual(try framing("HTTP/1.0 200 OK\r\n\r\n"), .untilClose)
    }

    func testRefusesWhatIsNoHTTPResponse() {
        for text in ["SSH-2.0-OpenSSH\r\n\r\n", "HTTP/1.1 OK\r\n\r\n", "HTTP/1.1 2000 Big\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"] {
            XCTAssertThrowsError(try HTTPResponseHead.parse(Array(text.utf8)), text)
        }
    }
}
