import Foundation
import JSON
import XCTest

/// Hostile and clumsy clients get a clear answer, and the server keeps serving everyone else.
final class HTTPRobustnessTests: XCTestCase {
    nonisolated(unsafe) static var server: ServerProcess?
    var port: Int { Self.server!.port }

    override func setUpWithError() throws {
        if Self.server == nil {
            let database = try TestEnvironment.current().createDatabase("robust")
            try database.migrate()
            Self.server = try database.startServer(["HEADER_TIMEOUT_SECONDS": "2"])
        }
    }

    override class func tearDown() {
        server?.stop()
        server = nil
    }

    private func assertStillServing(file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try HTTPTestClient(port: port).get("/healthz").status, 200, file: file, line: line)
    }

    /// Sends `bytes` and returns the one answer and whether the server then closed.
    private func exchange(_ bytes: [UInt8]) throws -> (TestResponse?, closed: Bool) {
        let connection = try RawConnection(port: port)
        connection.send(bytes)
        let (received, closed) = connection.receiveUntilClosed(timeout: 10)
        return (TestResponseParser.parseAll(received).first, closed)
    }

    func testGarbageBytesGet400AndAClose() throws {
        for garbage: [UInt8] in [[0x16, 0x03, 0x01, 0x00, 0xA5, 0x01], Array("\u{0}\u{1}\u{2}\r\n\r\n".utf8),
                                 Array("GET / HTTP/1.1\r\nBad Header\r\n\r\n".utf8), Array("HELLO WORLD\r\n\r\n".utf8),
                                 (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) }] {
            let (response, closed) = try exchange(garbage)
            XCTAssertEqual(response?.status, 400)
            XCTAssertNotNil(response?.json?["error"]?.stringValue)
            XCTAssertTrue(closed)
        }
        try assertStillServing()
    }

    func testOversizedHeadersAre431() throws {
        let (response, closed) = try exchange(Array(("GET /healthz HTTP/1.1\r\nX-Big: " + String(repeating: "x", count: 20_000) + "\r\n\r\n").utf8))
        XCTAssertEqual(response?.status, 431)
        XCTAssertTrue(closed)
        try assertStillServing()
    }

    func testOversizedBodyIs413WithoutReadingIt() throws {
        let connection = try RawConnection(port: port)
        connection.send("POST /api/auth/login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n")
        let (received, closed) = connection.receiveUntilClosed(timeout: 10)
        XCTAssertEqual(TestResponseParser.parseAll(received).first?.status, 413)
        XCTAssertTrue(closed)
    }

    func testPipelinedRequestsAreAnsweredInOrder() throws {
        let connection = try RawConnection(port: port)
        let login = #"{"email":"nobody@example.com","password":"password1"}"#
        connection.send("GET /healthz HTTP/1.1\r\n\r\nPOST /api/auth/login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: \(login.utf8.count)\r\n\r\n\(login)GET /nowhere HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        let responses = connection.receiveResponses(4)
        XCTAssertEqual(responses.map(\.status), [200, 401, 404, 200])
        XCTAssertEqual(responses.last?.header("connection"), "close")
    }

    func testKeepAliveServesManyRequestsOnOneConnection() throws {
        let connection = try RawConnection(port: port)
        for _ in 0..<20 {
            connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(connection.receiveResponses(1).first?.status, 200)
        }
    }

    func testChunkedRequestBodiesAreDecoded() throws {
        let body = #"{"email":"nobody@example.com","password":"password1"}"#
        let half = body.utf8.count / 2
        let chunked = "POST /api/auth/login HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            + String(half, radix: 16) + "\r\n" + String(body.prefix(half)) + "\r\n"
            + String(body.utf8.count - half, radix: 16) + "\r\n" + String(body.dropFirst(half)) + "\r\n0\r\n\r\n"
        let (response, _) = try exchange(Array(chunked.utf8))
        XCTAssertEqual(response?.status, 401, "parsed, looked up, refused: the body arrived whole")
    }

    func testExpectContinueGetsA100First() throws {
        let body = #"{"email":"nobody@example.com","password":"password1"}"#
        let connection = try RawConnection(port: port)
        connection.send("POST /api/auth/login HTTP/1.1\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
        XCTAssertEqual(connection.receiveResponses(1).first?.status, 100)
        connection.send(body)
        // The 100 was read above, so what comes now is the one final answer: wait for that one,
        // not for a second response that never comes (that waited out the 10 s time-out).
        XCTAssertEqual(connection.receiveResponses(1).last?.status, 401)
    }

    func testAHundredSlowClientsNeitherBlockOthersNorStay() throws {
        // Each sends half a request head and then nothing: the slowloris pattern.
        let slow = try (0..<100).map { _ in try RawConnection(port: port) }
        for connection in slow { connection.send("GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Wait: ") }
        let silent = try RawConnection(port: port)  // connects and says nothing at all

        try assertStillServing()
        let client = HTTPTestClient(port: port)
        XCTAssertEqual(try client.postJSON("/api/auth/login", ["email": "nobody@example.com", "password": "x"]).status, 401)

        // HEADER_TIMEOUT_SECONDS=2: every slow client is answered 408 and closed.
        for connection in slow {
            let (received, closed) = connection.receiveUntilClosed(timeout: 10)
            XCTAssertEqual(TestResponseParser.parseAll(received).first?.status, 408)
            XCTAssertTrue(closed)
        }
        let (nothing, closed) = silent.receiveUntilClosed(timeout: 10)
        XCTAssertEqual(nothing, [], "a silent connection is closed without an answer")
        XCTAssertTrue(closed)
        try assertStillServing()
    }

    func testAClientThatHalfClosesAfterItsRequestStillGetsTheAnswer() throws {
        let body = #"{"email":"nobody@example.com","password":"password1"}"#
        let connection = try RawConnection(port: port)
        connection.send("POST /api/auth/login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        connection.shutdownWrite()
        let (received, closed) = connection.receiveUntilClosed(timeout: 10)
        XCTAssertEqual(TestResponseParser.parseAll(received).first?.status, 401)
        XCTAssertTrue(closed)
    }

    func testAbruptDisconnectsMidRequestLeaveNoTrace() throws {
        for _ in 0..<50 {
            let connection = try RawConnection(port: port)
            connection.send("POST /api/auth/register HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")
        }
        try assertStillServing()
    }
}
