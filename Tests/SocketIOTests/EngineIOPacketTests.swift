import JSON
import SocketIO
import XCTest

final class EngineIOPacketTests: XCTestCase {
    func testWebSocketTextPackets() throws {
        XCTAssertEqual(try EngineIOPacket.decode(webSocketText: Array("4hello".utf8)), EngineIOPacket(.message, text: "hello"))
        XCTAssertEqual(try EngineIOPacket.decode(webSocketText: Array("2probe".utf8)), EngineIOPacket(.ping, text: "probe"))
        XCTAssertEqual(try EngineIOPacket.decode(webSocketText: Array("6".utf8)), EngineIOPacket(.noop))
        for bad in ["", "7", "abc", "x4", "\u{0}"] {
            XCTAssertThrowsError(try EngineIOPacket.decode(webSocketText: Array(bad.utf8)), bad)
        }
    }

    func testPollingPayloadsWithBinary() throws {
        let body = Array("4hello\u{1e}bAQIDBA==\u{1e}2\u{1e}4".utf8)
        let packets = try EngineIOPacket.decode(payload: body)
        XCTAssertEqual(packets, [EngineIOPacket(.message, text: "hello"), .binary([1, 2, 3, 4]), EngineIOPacket(.ping), EngineIOPacket(.message)])
        XCTAssertEqual(EngineIOPacket.encode(payload: packets), body)
        for bad in ["", "abc", "4a\u{1e}\u{1e}4b", "b!!!", "4ok\u{1e}9"] {
            XCTAssertThrowsError(try EngineIOPacket.decode(payload: Array(bad.utf8)), bad.debugDescription)
        }
    }
}
