import ChatCore
import JSON
import SocketIO
import XCTest
@testable import ChatServer

final class ChatPacketTests: XCTestCase {
    private let texts = ["hello", #"say "hi" \ back"#, "line\nbreak\ttab\u{01}", "héllo wörld 😀", "</script>", ""]

    private func stored(_ content: String) -> StoredMessage {
        StoredMessage(id: "019ab697-e800-7abc-8def-0123456789ab", senderID: "11111111-2222-4333-8444-555555555555",
                      receiverID: "66666666-7777-4888-8999-aaaaaaaaaaaa", content: content, createdAt: "2026-11-25T12:00:00.123Z", seq: 1_234_567)
    }

    func testReceiveMessageMatchesTheTreeEncoding() throws {
        for text in texts {
            let message = stored(text)
            let expected = SocketIOPacket(.event, data: ["receive_message", ["from": .string(message.senderID), "message": .string(text),
                                                                             "timestamp": .string(message.createdAt), "id": .string(message.id),
                                                                             "cursor": "cqglj"]])
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
                                                                                                "id": .string(message.id), "timestamp": .string(message.createdAt),
                                                                                                "cursor": "cqglj"]])
                XCTAssertEqual(ChatSocketApp.messageSent(message, namespace: namespace), sent.encoded(), text)
                XCTAssertEqual(try SocketIOPacket.decode(ChatSocketApp.messageSent(message, namespace: namespace)), sent)
            }
            for ackID in [0, 7, 1_234_567] {
                let message = stored("x")
                let ack = SocketIOPacket(.ack, namespace: namespace, ackID: ackID,
                                         data: [["ok": true, "id": .string(message.id), "timestamp": .string(message.createdAt), "cursor": "cqglj"]])
                XCTAssertEqual(ChatSocketApp.accepted(message, ackID: ackID, namespace: namespace), ack.encoded())
            }
        }
    }

    func testOwnMessageCarriesTheClientIDAndTheRepeatAckSaysSo() throws {
        let message = StoredMessage(id: "019ab697-e800-7abc-8def-0123456789ab", senderID: "11111111-2222-4333-8444-555555555555",
                                    receiverID: "66666666-7777-4888-8999-aaaaaaaaaaaa", content: "from the phone",
                                    createdAt: "2026-11-25T12:00:00.123Z", seq: 36, clientID: "0193a2b4-c5d6-4e7f-8091-a2b3c4d5e6f7")
        let own = SocketIOPacket(.event, data: ["own_message", ["to": .string(message.receiverID), "message": "from the phone",
                                                                "id": .string(message.id), "timestamp": .string(message.createdAt),
                                                                "cursor": "c10", "client_id": "0193a2b4-c5d6-4e7f-8091-a2b3c4d5e6f7"]])
        XCTAssertEqual(ChatSocketApp.ownMessage(message), own.encoded())
        let ack = try SocketIOPacket.decode(ChatSocketApp.accepted(message, ackID: 3, namespace: "/", isRepeat: true))
        XCTAssertEqual(ack.data, [["ok": true, "id": .string(message.id), "timestamp": .string(message.createdAt), "cursor": "c10", "repeat": true]])
    }

    func testTheOffsetIsAppendedAsTheLastArgument() throws {
        for text in texts {
            let plain = ChatSocketApp.receiveMessage(stored(text))
            let packet = try SocketIOPacket.decode(ChatSocketApp.withOffset(plain, seq: 1_234_567))
            guard case .array(let arguments)? = packet.data else { return XCTFail("no arguments") }
            XCTAssertEqual(arguments.count, 3)
            XCTAssertEqual(arguments.last, "cqglj")
            XCTAssertEqual(Array(arguments.prefix(2)), try SocketIOPacket.decode(plain).data?.arrayValue)
        }
    }

    func testAStreamMessageReplaysAsTheEventItsUserGotLive() {
        let message = ChatMessage(id: "m", senderID: "11111111-2222-4333-8444-555555555555", receiverID: "66666666-7777-4888-8999-aaaaaaaaaaaa",
                                  content: "hi", createdAt: "2026-11-25T12:00:00.123Z", seq: 7, clientID: "0193a2b4-c5d6-4e7f-8091-a2b3c4d5e6f7")
        let asStored = StoredMessage(id: "m", senderID: message.senderID!, receiverID: message.receiverID!, content: "hi",
                                     createdAt: message.createdAt!, seq: 7, clientID: message.clientID)
        XCTAssertEqual(ChatSocketApp.streamPackets(.message(message), for: message.receiverID!), [ChatSocketApp.receiveMessage(asStored)])
        XCTAssertEqual(ChatSocketApp.streamPackets(.message(message), for: message.senderID!), [ChatSocketApp.ownMessage(asStored)])
    }

    func testAReceiptReplaysAsOneMessagesReadPerSideThatHasRead() throws {
        let me = "11111111-2222-4333-8444-555555555555", peer = "66666666-7777-4888-8999-aaaaaaaaaaaa"
        let both = ChatSocketApp.streamPackets(.receipt(ReceiptState(peerID: peer, readSeq: 36, peerReadSeq: 37, position: 40)), for: me)
        XCTAssertEqual(try both.map { try SocketIOPacket.decode($0) }, [
            SocketIOPacket(.event, data: ["messages_read", ["reader": .string(me), "peer": .string(peer), "up_to": "c10", "cursor": "c14"]]),
            SocketIOPacket(.event, data: ["messages_read", ["reader": .string(peer), "peer": .string(me), "up_to": "c11", "cursor": "c14"]]),
        ])
        let peerOnly = ChatSocketApp.streamPackets(.receipt(ReceiptState(peerID: peer, readSeq: 0, peerReadSeq: 37, position: 40)), for: me)
        XCTAssertEqual(peerOnly.count, 1)
        // Messages to oneself: one side.
        XCTAssertEqual(ChatSocketApp.streamPackets(.receipt(ReceiptState(peerID: me, readSeq: 5, peerReadSeq: 5, position: 6)), for: me).count, 1)
    }

    func testTheSyncJSONListsReceiptsAsReadEventsAtTheirPlace() throws {
        let me = "11111111-2222-4333-8444-555555555555", peer = "66666666-7777-4888-8999-aaaaaaaaaaaa"
        let message = ChatMessage(id: "m", senderID: peer, receiverID: me, content: "hi", createdAt: "2026-11-25T12:00:00.123Z", seq: 36)
        let page = MessageService.SyncPage(events: [.message(message), .receipt(ReceiptState(peerID: peer, readSeq: 36, peerReadSeq: 0, position: 37))],
                                           next: "c11", more: false)
        let json = JSONValue.object(SyncResponse.json(page, for: me))
        XCTAssertEqual(json["events"]?.arrayValue?.map { $0["type"]?.stringValue }, ["message", "read"])
        XCTAssertEqual(json["events"]?.arrayValue?.last, ["type": "read", "cursor": "c11", "reader": .string(me), "peer": .string(peer), "up_to": "c10"])
    }
}
