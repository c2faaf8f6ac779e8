import ChatCore
import JSON

/// The chat as a Socket.IO application (CONTRACT.md): CONNECT authenticated by JWT (the
/// `auth.token` of the CONNECT, or the handshake's `token` query parameter), one room per
/// user id, `send_message` written through the group-commit writer and, only after COMMIT,
/// `receive_message` to every socket of the receiver and `message_sent` (or the ack) to the
/// sender. Refusals: an ack `{ok:false,error}`, or without an ack a `message_error` event.
struct ChatSocketApp: Sendable {
    let accounts: AccountService
    let writer: MessageWriter
    let rooms: SocketIORooms
    let maxMessageBytes: Int

    var namespace: SocketIONamespace {
        SocketIONamespace(name: "/", authorize: { authorize($0, handshake: $1) }, onConnect: connected)
    }

    func authorize(_ auth: JSONValue?, handshake: HTTPRequest) -> SocketIOAuthorization {
        // As the Node server: `auth.token || query.token`.
        var token = auth?["token"]?.stringValue ?? ""
        if token.isEmpty { token = handshake.queryParameter("token") ?? "" }
        guard !token.isEmpty else { return .refused(message: "No token") }
        switch accounts.authenticate(token: token) {
        case .success(let userID): return .accepted(userID: userID)
        case .failure: return .refused(message: "Invalid token")
        }
    }

    func connected(_ socket: SocketIOSocket) {
        guard let userID = socket.userID else { return }
        socket.join(userID)
        socket.on("send_message") { arguments, _, ack in
            send(from: socket, userID: userID, payload: arguments.first, ack: ack)
        }
    }

    private func send(from socket: SocketIOSocket, userID: String, payload: JSONValue?, ack: SocketIOSocket.Ack?) {
        let refuse = { (error: String) in
            if let ack {
                ack([["ok": false, "error": .string(error)]], [])
            } else {
                socket.emit("message_error", [["to": payload?["to"] ?? .null, "message": payload?["message"] ?? .null, "error": .string(error)]])
            }
        }
        let (to, content): (String, String)
        switch Validation.outgoingMessage(payload, maxBytes: maxMessageBytes) {
        case .failure(let failure): return refuse(failure.message)
        case .success(let message): (to, content) = message
        }
        let rooms = self.rooms
        let loop = socket.loop
        let answer = LoopBound((ack: ack, refuse: refuse))
        writer.write(senderID: userID, receiverID: to, content: content) { result in
            // Delivery fans out from the writer's thread; the sender's answer goes to its loop.
            if case .success(let stored) = result {
                rooms.emit(to: to, "receive_message", [["from": .string(stored.senderID), "message": .string(stored.content),
                                                        "timestamp": .string(stored.createdAt), "id": .string(stored.id)]])
            }
            loop.execute {
                let (ack, refuse) = answer.value
                switch result {
                case .success(let stored):
                    socket.emit("message_sent", [["to": .string(to), "message": .string(stored.content), "id": .string(stored.id),
                                                  "timestamp": .string(stored.createdAt)]])
                    ack?([["ok": true, "id": .string(stored.id), "timestamp": .string(stored.createdAt)]], [])
                case .failure(.unknownRecipient):
                    refuse("no user with id \(to)")
                case .failure(.unavailable):
                    refuse("the message could not be stored; try again")
                case .failure(.failed):
                    refuse("the message could not be stored")
                }
            }
        }
    }
}
