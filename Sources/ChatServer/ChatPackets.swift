import ChatCore
import JSON
import SocketIO
import SocketIOServer

/// The chat's packets, written as bytes (no JSON tree per message), and the JSON of a stream
/// page, shared by the `sync` event and `GET /api/sync`.
extension ChatSocketApp {
    /// `2["receive_message",{"from","message","timestamp","id","cursor"}]`
    static func receiveMessage(_ stored: StoredMessage) -> [UInt8] {
        var out = eventStart("receive_message", namespace: "/", capacity: stored.content.utf8.count + 180)
        JSONWriter.writeMember("from", stored.senderID, into: &out)
        JSONWriter.writeMember("message", stored.content, into: &out)
        JSONWriter.writeMember("timestamp", stored.createdAt, into: &out)
        JSONWriter.writeMember("id", stored.id, into: &out)
        writeCursorMember(stored.seq, into: &out)
        out.append(contentsOf: "}]".utf8)
        return out
    }

    /// `2["message_sent",{"to","message","id","timestamp","cursor","client_id"?}]`
    static func messageSent(_ stored: StoredMessage, namespace: String) -> [UInt8] {
        var out = eventStart("message_sent", namespace: namespace, capacity: stored.content.utf8.count + 220)
        writeOwnMessage(stored, into: &out)
        return out
    }

    /// `2["own_message",{"to","message","id","timestamp","cursor","client_id"?}]`: what the
    /// user sent from another of their sockets.
    static func ownMessage(_ stored: StoredMessage) -> [UInt8] {
        var out = eventStart("own_message", namespace: "/", capacity: stored.content.utf8.count + 220)
        writeOwnMessage(stored, into: &out)
        return out
    }

    private static func writeOwnMessage(_ stored: StoredMessage, into out: inout [UInt8]) {
        JSONWriter.writeMember("to", stored.receiverID, into: &out)
        JSONWriter.writeMember("message", stored.content, into: &out)
        JSONWriter.writeMember("id", stored.id, into: &out)
        JSONWriter.writeMember("timestamp", stored.createdAt, into: &out)
        writeCursorMember(stored.seq, into: &out)
        if let clientID = stored.clientID { JSONWriter.writeMember("client_id", clientID, into: &out) }
        out.append(contentsOf: "}]".utf8)
    }

    /// `3<ack id>[{"ok":true,"id","timestamp","cursor","repeat"?}]`; `repeat: true` when the
    /// message was stored before under the same `client_id`.
    static func accepted(_ stored: StoredMessage, ackID: Int, namespace: String, isRepeat: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(140)
        SocketIOPacket.appendHeader(.ack, namespace: namespace, ackID: ackID, to: &out)
        out.append(contentsOf: #"[{"ok":true"#.utf8)
        JSONWriter.writeMember("id", stored.id, into: &out)
        JSONWriter.writeMember("timestamp", stored.createdAt, into: &out)
        writeCursorMember(stored.seq, into: &out)
        if isRepeat { out.append(contentsOf: #","repeat":true"#.utf8) }
        out.append(contentsOf: "}]".utf8)
        return out
    }

    /// `2["messages_read",{"reader","peer","up_to","cursor"}]`: `reader` has read `peer`'s
    /// messages up to `up_to` (a cursor); `cursor` is the receipt's place in the stream.
    static func messagesRead(reader: String, peer: String, readSeq: Int64, position: Int64) -> [UInt8] {
        var out = eventStart("messages_read", namespace: "/", capacity: 200)
        JSONWriter.writeMember("reader", reader, into: &out)
        JSONWriter.writeMember("peer", peer, into: &out)
        out.append(contentsOf: #","up_to":""#.utf8)
        StreamCursor.write(readSeq, into: &out)
        out.append(UInt8(ascii: "\""))
        writeCursorMember(position, into: &out)
        out.append(contentsOf: "}]".utf8)
        return out
    }

    /// The receipts a conversation's state stands for, from `userID`'s side: how far they read
    /// the peer, and how far the peer read them (each only once it is above zero).
    static func receipts(of state: ReceiptState, for userID: String) -> [(reader: String, peer: String, readSeq: Int64)] {
        var receipts: [(reader: String, peer: String, readSeq: Int64)] = []
        if state.readSeq > 0 { receipts.append((userID, state.peerID, state.readSeq)) }
        if state.peerReadSeq > 0, state.peerID != userID { receipts.append((state.peerID, userID, state.peerReadSeq)) }
        return receipts
    }

    /// `,"cursor":"<cursor>"` (never the first member).
    private static func writeCursorMember(_ seq: Int64, into out: inout [UInt8]) {
        out.append(contentsOf: #","cursor":""#.utf8)
        StreamCursor.write(seq, into: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// An event packet `…]` with `,"<cursor of seq>"` before its closing bracket: the offset
    /// connection state recovery puts last.
    static func withOffset(_ packet: [UInt8], seq: Int64) -> [UInt8] {
        var out = packet
        out.reserveCapacity(packet.count + 18)
        out.removeLast()
        out.append(contentsOf: #",""#.utf8)
        StreamCursor.write(seq, into: &out)
        out.append(contentsOf: #""]"#.utf8)
        return out
    }

    /// An event of `userID`'s stream as the packets a live socket got for it: `receive_message`
    /// for a message that came to them, `own_message` for one they sent, `messages_read` for
    /// each side of a receipt.
    static func streamPackets(_ event: MessageService.StreamEvent, for userID: String) -> [[UInt8]] {
        switch event {
        case .message(let message):
            let stored = StoredMessage(id: message.id, senderID: message.senderID ?? "", receiverID: message.receiverID ?? "",
                                       content: message.content ?? "", createdAt: message.createdAt ?? "", seq: message.seq ?? 0,
                                       clientID: message.clientID)
            return [stored.receiverID == userID ? receiveMessage(stored) : ownMessage(stored)]
        case .receipt(let state):
            return receipts(of: state, for: userID).map { messagesRead(reader: $0.reader, peer: $0.peer, readSeq: $0.readSeq, position: state.position) }
        }
    }

    /// The ack `[{"ok":false,"error"}]`, or without an ack id the event
    /// `message_error` `{"to","message","error"}` echoing what was sent; a refusal by a rate
    /// limit also says when to try again (`retry_after_ms`).
    static func refusal(_ error: String, to origin: Origin, retryAfterMilliseconds: Int64? = nil) -> [UInt8] {
        let namespace = origin.socket.namespace
        var answer = JSONObject([("ok", false), ("error", .string(error))])
        if let ackID = origin.ackID {
            if let retryAfterMilliseconds { answer["retry_after_ms"] = .number(Double(retryAfterMilliseconds)) }
            return SocketIOPacket(.ack, namespace: namespace, ackID: ackID, data: [.object(answer)]).encoded()
        }
        var echoed = JSONObject([("to", origin.payload?["to"] ?? .null), ("message", origin.payload?["message"] ?? .null), ("error", .string(error))])
        if let retryAfterMilliseconds { echoed["retry_after_ms"] = .number(Double(retryAfterMilliseconds)) }
        return SocketIOSocket.eventPacket("message_error", [.object(echoed)], namespace: namespace).encoded()
    }

    private static func eventStart(_ name: StaticString, namespace: String, capacity: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(capacity)
        SocketIOPacket.appendHeader(.event, namespace: namespace, to: &out)
        out.append(contentsOf: #"[""#.utf8)
        name.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(contentsOf: #"",{"#.utf8)
        return out  // members follow, then `}]`
    }
}

/// A page of a user's stream as JSON, for `sync` and `GET /api/sync`:
/// `{"events":[{"type":"message","cursor","id","from","to","message","timestamp","client_id"?}
///             | {"type":"read","cursor","reader","peer","up_to"}], "next","more"}`.
/// `next` is the cursor to ask after; `more` says whether more follow it already (page again)
/// or the client is up to date. A conversation's receipt gives both sides' watermarks, each
/// as a `read` event at the same cursor.
enum SyncResponse {
    static func json(_ page: MessageService.SyncPage, for userID: String) -> JSONObject {
        var events: [JSONValue] = []
        events.reserveCapacity(page.events.count)
        for event in page.events {
            switch event {
            case .message(let message):
                var json = JSONObject([("type", "message"), ("cursor", .string(message.seq.map(StreamCursor.encode) ?? page.next)),
                                       ("id", .string(message.id)), ("from", message.senderID.map(JSONValue.string) ?? .null),
                                       ("to", message.receiverID.map(JSONValue.string) ?? .null),
                                       ("message", message.content.map(JSONValue.string) ?? .null),
                                       ("timestamp", message.createdAt.map(JSONValue.string) ?? .null)])
                if let clientID = message.clientID, message.senderID == userID { json["client_id"] = .string(clientID) }
                events.append(.object(json))
            case .receipt(let state):
                for receipt in ChatSocketApp.receipts(of: state, for: userID) {
                    events.append(.object(JSONObject([("type", "read"), ("cursor", .string(StreamCursor.encode(state.position))),
                                                      ("reader", .string(receipt.reader)), ("peer", .string(receipt.peer)),
                                                      ("up_to", .string(StreamCursor.encode(receipt.readSeq)))])))
                }
            }
        }
        return JSONObject([("events", .array(events)), ("next", .string(page.next)), ("more", .bool(page.more))])
    }
}
