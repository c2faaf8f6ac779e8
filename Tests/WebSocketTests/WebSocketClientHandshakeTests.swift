import WebSocket
import XCTest

final class WebSocketClientHandshakeTests: XCTestCase {
    /// RFC 6455 §1.3's example key and accept value.
    private let handshake = WebSocketClientHandshake(keyBytes: Array("the sample nonce".utf8))

    func testTheRequestCarriesTheKeyAndTheUpgradeHeaders() {
        XCTAssertEqual(handshake.key, "dGhlIHNhbXBsZSBub25jZQ==")
        let request = String(decoding: handshake.request(target: "/chat?x=1", host: "server.example.com", extraHeaders: [("Origin", "http://example.com")]), as: UTF8.self)
        XCTAssertEqual(request, "GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://example.com\r\n\r\n")
    }

    func testTheServersAcceptIsCheckedAndFramesAfterTheHeadAreLeft() throws {
        let answer = Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nsec-websocket-accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n\r\n".utf8)
        let frame: [UInt8] = [0x81, 0x01, 0x34]
        for length in 0..<answer.count {
            XCTAssertNil(try handshake.headLength(ofResponse: answer[..<length]), "\(length) bytes")
        }
        XCTAssertEqual(try handshake.headLength(ofResponse: answer + frame), answer.count)
    }

    func testAnotherAnswerIsARefusalThatSaysWhy() {
        let wrongAccept = "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
        let refused = "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n"
        let noAccept = "HTTP/1.1 101 Switching Protocols\r\n\r\n"
        for (text, statusLine) in [(wrongAccept, "HTTP/1.1 101 Switching Protocols"), (refused, "HTTP/1.1 426 Upgrade Required"),
                                   (noAccept, "HTTP/1.1 101 Switching Protocols")] {
            XCTAssertThrowsError(try handshake.headLength(ofResponse: Array(text.utf8))) { error in
                XCTAssertEqual((error as? WebSocketClientHandshake.Refusal)?.statusLine, statusLine)
            }
        }
    }

    func testAwaitingTheAnswerReadsUntilTheHeadAndKeepsTheFramesAfterIt() throws {
        let head = Array("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".utf8)
        var pieces = head.map { [$0] }
        pieces.append([0x81, 0x01, 0x34])
        var reads = 0
        let leftover = try handshake.awaitResponse {
            reads += 1
            return pieces.isEmpty ? [] : pieces.removeFirst()
        }
        XCTAssertEqual(leftover, [], "the head ended on its own read: nothing more was read")
        XCTAssertEqual(reads, head.count)
        XCTAssertEqual(pieces, [[0x81, 0x01, 0x34]])
        XCTAssertEqual(try handshake.awaitResponse { Array("HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nxy".utf8) }, Array("xy".utf8))
        XCTAssertThrowsError(try handshake.awaitResponse { [] }) { error in
            XCTAssertEqual((error as? WebSocketClientHandshake.Refusal)?.statusLine, "", "closed before any answer")
        }
    }

    func testEveryHandshakeHasAFreshKey() {
        XCTAssertNotEqual(WebSocketClientHandshake().key, WebSocketClientHandshake().key)
        XCTAssertEqual(WebSocketClientHandshake().key.count, 24)
    }
}
