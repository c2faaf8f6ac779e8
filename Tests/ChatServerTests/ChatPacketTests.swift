import ChatCore
import JSON
import SocketIO
import XCTest
@testable import ChatServer

final class ChatPacketTests: XCTestCase {
    private let texts = ["hello", #"say "hi" \ back"#, "line\nbreak\ttab\u{01}", "héllo wörld 😀", "</script>", ""]

    private func stored(_ content: String) -> StoredMessage {
        StoredMessage(id: "019ab697-e800-7abc-8def-0123456789ab", senderID: "11111111-2222-4333-8444-555555555555",
                      receiverID: "66666666-7777-4888-8999-aaaaaaaaaaaa", content: content, createdAt: "2026-11-25T12:00:00.123Z")
    }

    func testReceiveMessageMatchesTheTreeEncoding() throws {
        for text in texts {
            let message = stored(text)
            let expected = SocketIOPacket(.event, data: ["receive_message", ["from": .string(message.senderID), "message": .string(text),
                                                                             "timestamp": .string(message.createdAt), "id": .string(message.id)]])
            let bytes = ChatSocketApp.receiveMessage(message)
            XCTAssertEqual(bytes, expected.encoded(), text)
            XCTAssertEqual(try SocketIOPacket.decode(bytes), expected)
        }
    }

    func testMessageSentAndTheAckMatchTheTreeEncodingInAnyNamespace() throws {
        for namespace in ["/", "/chat"] {
            for text in texts {
                let message = stored(text)
                let sent = SocketIOPacket(.event, namespace: namespace, data: ["message_sent", ["to": .string(message.receiverID), "message": .string(text),
                                                                                                "id": .string(message.id), "timestamp": .string(message.createdAt)]])
                XCTAssertEqual(ChatSocketApp.messageSent(message, namespace: namespace), sent.encoded(), text)
                XCTAssertEqual(try SocketIOPacket.decode(ChatSocketApp.messageSent(message, namespace: namespace)), sent)
            }
            for ackID in [0, 7, 1_234_567] {
                let message = stored("x")
                let ack = SocketIOPacket(.ack, namespace: namespace, ackID: ackID,
                                         data: [["ok": true, "id": .string(message.id), "timestamp": .string(message.createdAt)]])
                XCTAssertEqual(ChatSocketApp.accepted(message, ackID: ackID, namespace: namespace), ack.encoded())
            }
        }
    }
}
