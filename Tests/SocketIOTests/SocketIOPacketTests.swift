import JSON
import SocketIO
import XCTest

final class SocketIOPacketTests: XCTestCase {
    private func decode(_ text: String) throws -> SocketIOPacket { try SocketIOPacket.decode(Array(text.utf8)) }

    func testDecodesEveryShapeOfTheSpec() throws {
        XCTAssertEqual(try decode("0"), SocketIOPacket(.connect))
        XCTAssertEqual(try decode(#"0{"token":"123"}"#), SocketIOPacket(.connect, data: ["token": "123"]))
        XCTAssertEqual(try decode("0/custom,"), SocketIOPacket(.connect, namespace: "/custom"))
        XCTAssertEqual(try decode("0/custom"), SocketIOPacket(.connect, namespace: "/custom"))
        XCTAssertEqual(try decode(#"0/admin,{"token":"abc"}"#), SocketIOPacket(.connect, namespace: "/admin", data: ["token": "abc"]))
        XCTAssertEqual(try decode("1"), SocketIOPacket(.disconnect))
        XCTAssertEqual(try decode("1/custom,"), SocketIOPacket(.disconnect, namespace: "/custom"))
        XCTAssertEqual(try decode(#"2["send_message",{"to":"x","message":"hi"}]"#),
                       SocketIOPacket(.event, data: ["send_message", ["to": "x", "message": "hi"]]))
        XCTAssertEqual(try decode(#"212["foo"]"#), SocketIOPacket(.event, ackID: 12, data: ["foo"]))
        XCTAssertEqual(try decode(#"2/admin,456["foo",1]"#), SocketIOPacket(.event, namespace: "/admin", ackID: 456, data: ["foo", 1]))
        XCTAssertEqual(try decode(#"3456[1,"2"]"#), SocketIOPacket(.ack, ackID: 456, data: [1, "2"]))
        XCTAssertEqual(try decode(#"52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#).attachments, 2)
        XCTAssertEqual(try decode(#"62-789[{"_placeholder":true,"num":0}]"#).ackID, 789)
    }

    func testRefusesWhatTheReferenceServerRefuses() {
        for bad in ["", "7", "abc", "4abc", "2{}", "2", "2[]", #"2abc["message-with-ack",1]"#, "1{}", "0[1]", "01", #"3["x"]"#,
                    "5[\"x\"]", "5x-[\"x\"]", #"2["unterminated"#, "2/custom,{", #"25["a"] junk"#] {
            XCTAssertThrowsError(try decode(bad), bad)
        }
    }

    func testEncodesWhatItDecodes() throws {
        for text in ["0", #"0/custom,{"sid":"abc"}"#, #"2["receive_message",{"from":"a","message":"hi\n\"there\""}]"#, #"3456[1,"2",{"3":[false]}]"#,
                     #"42/custom,["auth",{}]"#.dropFirst().description, #"52-["m",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
                     #"4{"message":"Invalid namespace"}"#] {
            XCTAssertEqual(String(decoding: try decode(text).encoded(), as: UTF8.self), text)
        }
    }
}
