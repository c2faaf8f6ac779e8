import ChatCore
import JSON
import ServerRuntime
import SocketIO
import SocketIOServer

/// The chat as a Socket.IO application (CONTRACT.md): CONNECT authenticated by JWT (the
/// `auth.token` of the CONNECT, or the handshake's `token` query parameter), one room per
/// user id, `send_message` written through the group-commit writer and, only after COMMIT,
/// `receive_message` to every socket of the receiver and `message_sent` (or the ack) to the
/// sender. Refusals: an ack `{ok:false,error}`, or without an ack a `message_error` event.
struct ChatSocketApp: Sendable {
    /// Who asked for a message to be written, and how to answer them.
    struct Origin: Sendable {
        let socket: SocketIOSocket
        let ackID: Int?
        /// The event's `to` and `message` as sent, echoed in `message_error`.
        let payload: JSONValue?
    }

    typealias Writer = MessageWriter<Origin>

    let accounts: AccountService
    let writer: Writer
    let rooms: SocketIORooms
    let maxMessageBytes: Int

    var namespace: SocketIONamespace {
        SocketIONamespace(name: "/", authorize: { authorize($0, handshake: $1) }, onConnect: { connected($0, auth: $1) })
    }

    func authorize(_ auth: JSONValue?, handshake: EngineIOHandshake) -> SocketIOAuthorization {
        // As the Node server: `auth.token || query.token`.
        var token = auth?["token"]?.stringValue ?? ""
        if token.isEmpty { token = handshake.queryParameter("token") ?? "" }
        guard !token.isEmpty else { return .refused(message: "No token") }
        switch accounts.authenticate(token: token) {
        case .success(let userID): return .accepted(userID: userID)
        case .failure: return .refused(message: "Invalid token")
        }
    }

    func connected(_ socket: SocketIOSocket, auth _: JSONValue) {
        guard let userID = socket.userID else { return }
        socket.join(userID)
        socket.on("send_message") { arguments, _, ack in
            send(from: socket, userID: userID, payload: arguments.first, ackID: ack?.id)
        }
    }

    private func send(from socket: SocketIOSocket, userID: String, payload: JSONValue?, ackID: Int?) {
        let origin = Origin(socket: socket, ackID: ackID, payload: payload)
        switch Validation.outgoingMessage(payload, maxBytes: maxMessageBytes) {
        case .failure(let failure):
            socket.sendEncoded(Self.refusal(failure.message, to: origin))
        case .success(let message):
            if !writer.write(senderID: userID, receiverID: message.to, content: message.content, context: origin) {
                socket.sendEncoded(Self.refusal(Self.tryAgain, to: origin))
            }
        }
    }

    static let tryAgain = "the message could not be stored; try again"

    /// Hands out one committed batch (on the writer's thread): every packet is encoded here,
    /// once, and each event loop gets one task carrying all of its sockets' packets, so a
    /// socket's share of the batch leaves in one write.
    static func deliver(_ outcomes: [Writer.Outcome], rooms: SocketIORooms) {
        var receivers: Set<String> = []
        for outcome in outcomes { if case .success(let stored) = outcome.result { receivers.insert(stored.receiverID) } }
        let members = rooms.members(of: receivers)
        var perLoop: [(loop: EventLoop, packets: [(SocketIOSocket, [UInt8])])] = []
        func post(_ packet: [UInt8], to socket: SocketIOSocket) {
            if let index = perLoop.firstIndex(where: { $0.loop === socket.loop }) {
                perLoop[index].packets.append((socket, packet))
            } else {
                perLoop.append((socket.loop, [(socket, packet)]))
            }
        }
        for outcome in outcomes {
            let origin = outcome.context
            switch outcome.result {
            case .success(let stored):
                if let sockets = members[stored.receiverID] {
                    let packet = receiveMessage(stored)
                    for socket in sockets where socket.namespace == "/" { post(packet, to: socket) }
                }
                post(messageSent(stored, namespace: origin.socket.namespace), to: origin.socket)
                if let ackID = origin.ackID { post(accepted(stored, ackID: ackID, namespace: origin.socket.namespace), to: origin.socket) }
            case .failure(let error):
                let reason: String
                switch error {
                case .unknownRecipient: reason = "no user with id \(outcome.receiverID)"
                case .unavailable: reason = tryAgain
                case .failed: reason = "the message could not be stored"
                }
                post(refusal(reason, to: origin), to: origin.socket)
            }
        }
        for (loop, packets) in perLoop {
            loop.execute { for (socket, packet) in packets { socket.sendEncoded(packet) } }
        }
    }

    // MARK: - Packets, written as bytes (no JSON tree per message)

    /// `2["receive_message",{"from","message","timestamp","id"}]`
    static func receiveMessage(_ stored: StoredMessage) -> [UInt8] {
        var out = eventStart("receive_message", namespace: "/", capacity: stored.content.utf8.count + 160)
        JSONWriter.writeMember("from", stored.senderID, into: &out)
        JSONWriter.writeMember("message", stored.content, into: &out)
        JSONWriter.writeMember("timestamp", stored.createdAt, into: &out)
        JSONWriter.writeMember("id", stored.id, into: &out)
        out.append(contentsOf: "}]".utf8)
        return out
    }

    /// `2["message_sent",{"to","message","id","timestamp"}]`
    static func messageSent(_ stored: StoredMessage, namespace: String) -> [UInt8] {
        var out = eventStart("message_sent", namespace: namespace, capacity: stored.content.utf8.count + 160)
        JSONWriter.writeMember("to", stored.receiverID, into: &out)
        JSONWriter.writeMember("message", stored.content, into: &out)
        JSONWriter.writeMember("id", stored.id, into: &out)
        JSONWriter.writeMember("timestamp", stored.createdAt, into: &out)
        out.append(contentsOf: "}]".utf8)
        return out
    }

    /// `3<ack id>[{"ok":true,"id","timestamp"}]`
    static func accepted(_ stored: StoredMessage, ackID: Int, namespace: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(120)
        SocketIOPacket.appendHeader(.ack, namespace: namespace, ackID: ackID, to: &out)
        out.append(contentsOf: #"[{"ok":true"#.utf8)
        JSONWriter.writeMember("id", stored.id, into: &out)
        JSONWriter.writeMember("timestamp", stored.createdAt, into: &out)
        out.append(contentsOf: "}]".utf8)
        return out
    }

    /// The ack `[{"ok":false,"error"}]`, or without an ack id the event
    /// `message_error` `{"to","message","error"}` echoing what was sent.
    static func refusal(_ error: String, to origin: Origin) -> [UInt8] {
        let namespace = origin.socket.namespace
        if let ackID = origin.ackID {
            return SocketIOPacket(.ack, namespace: namespace, ackID: ackID, data: [["ok": false, "error": .string(error)]]).encoded()
        }
        let echoed: JSONValue = ["to": origin.payload?["to"] ?? .null, "message": origin.payload?["message"] ?? .null, "error": .string(error)]
        return SocketIOSocket.eventPacket("message_error", [echoed], namespace: namespace).encoded()
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
