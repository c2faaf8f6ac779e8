import JSON
import Logging
import ServerRuntime
import SocketIO

/// The module's log: a line per connection and disconnection (`SocketIOConnection`), per
/// session opened and closed at debug.
let connectionLog = Logger(label: "chat.socketio")

/// The Socket.IO side of one Engine.IO session, confined to its loop (answers from other
/// threads are brought back to it with `loop.execute`; hence `@unchecked Sendable`).
final class SocketIOConnection: EngineIOSessionDelegate, @unchecked Sendable {
    private let server: SocketIOServer
    private unowned let session: EngineIOSession
    private var sockets: [String: SocketIOSocket] = [:]
    private var partial: (packet: SocketIOPacket, attachments: [[UInt8]])?
    private var connectTimer: LoopTimer?
    /// Namespaces whose CONNECT is being checked: a second CONNECT meanwhile is ignored.
    private var authorizing: Set<String> = []
    private var closed = false
    /// Whom the connection was last let in as, for its lines.
    private var userID: String?

    init(server: SocketIOServer, session: EngineIOSession) {
        self.server = server
        self.session = session
        connectTimer = session.loop.schedule(after: server.connectTimeoutMilliseconds) { [weak self] in
            guard let self, self.sockets.isEmpty else { return }
            self.session.close(reason: "connect timeout")
        }
    }

    func send(_ packet: SocketIOPacket, attachments: [[UInt8]] = []) {
        session.send(text: packet.encoded())
        for attachment in attachments { session.send(binary: attachment) }
    }

    func sendEncoded(_ text: [UInt8]) { session.send(text: text) }

    func pauseInput() { session.pauseInput() }
    func resumeInput() { session.resumeInput() }

    var handshake: EngineIOHandshake { session.handshake }

    func sendBinary(_ bytes: [UInt8]) { session.send(binary: bytes) }

    func session(_ session: EngineIOSession, receivedText text: [UInt8]) {
        guard partial == nil, let packet = try? SocketIOPacket.decode(text) else {
            return session.close(reason: "invalid Socket.IO packet")
        }
        if packet.attachments > 0 {
            partial = (packet, [])
        } else {
            dispatch(packet, attachments: [])
        }
    }

    func session(_ session: EngineIOSession, receivedBinary bytes: [UInt8]) {
        guard var waiting = partial else { return session.close(reason: "unexpected binary attachment") }
        waiting.attachments.append(bytes)
        if waiting.attachments.count == waiting.packet.attachments {
            partial = nil
            dispatch(waiting.packet, attachments: waiting.attachments)
        } else {
            partial = waiting
        }
    }

    private func dispatch(_ packet: SocketIOPacket, attachments: [[UInt8]]) {
        switch packet.kind {
        case .connect:
            connect(packet)
        case .disconnect:
            if let socket = sockets.removeValue(forKey: packet.namespace) { ended(socket, reason: "client namespace disconnect") }
        case .event, .binaryEvent:
            guard let socket = sockets[packet.namespace], case .array(let arguments)? = packet.data else { return }
            socket.handleEvent(arguments, attachments: attachments, ackID: packet.ackID)
        case .ack, .binaryAck:
            break  // this server asks for no acks
        case .connectError:
            session.close(reason: "invalid Socket.IO packet")
        }
    }

    private func connect(_ packet: SocketIOPacket) {
        guard let namespace = server.namespaces[packet.namespace] else {
            return send(SocketIOPacket(.connectError, namespace: packet.namespace, data: ["message": "Invalid namespace"]))
        }
        guard sockets[packet.namespace] == nil, authorizing.insert(packet.namespace).inserted else { return }
        let loop = session.loop
        namespace.authorize(packet.data, session.handshake) { [weak self] answer in
            let connection = self
            loop.execute { connection?.authorized(packet, namespace: namespace, answer) }
        }
    }

    private func authorized(_ packet: SocketIOPacket, namespace: SocketIONamespace, _ answer: SocketIOAuthorization) {
        authorizing.remove(packet.namespace)
        guard !closed else { return }
        let original = answer
        var answer = answer
        if case .accepted(let userID) = answer, let refusal = namespace.admit?(userID) { answer = .refused(message: refusal) }
        switch answer {
        case .refused(let message, let data):
            var fields = lineFields(["namespace": .string(packet.namespace), "reason": .string(message)])
            if case .accepted(let refusedUser) = original { fields["user"] = refusedUser.map { .string($0) } }
            connectionLog.info("connect refused", metadata: fields)
            var payload = JSONObject([("message", .string(message))])
            if let data { payload["data"] = data }
            send(SocketIOPacket(.connectError, namespace: packet.namespace, data: .object(payload)))
        case .accepted(let userID):
            connectTimer?.cancel()
            let auth = packet.data ?? .object(JSONObject())
            let pid = auth["pid"]?.stringValue
            let recovery = namespace.recovery.flatMap { recovery in
                recovery.scope == .everySocket || auth["recover"] == .bool(true) || pid != nil ? recovery : nil
            }
            let socket = SocketIOSocket(id: EngineIOServer.makeSessionID(), namespace: packet.namespace, connection: self,
                                        loop: session.loop, rooms: server.rooms, userID: userID, recovers: recovery != nil)
            sockets[packet.namespace] = socket
            server.connectedSockets.add(1, ordering: .relaxed)
            self.userID = userID
            connectionLog.info("connected", metadata: lineFields(["namespace": .string(packet.namespace), "resuming": .stringConvertible(pid != nil)]))
            namespace.onConnect(socket, auth)
            guard let recovery else { return socket.completeConnect(pid: nil, missed: nil) }
            guard let pid else { return socket.completeConnect(pid: recovery.newSession(socket), missed: nil) }
            let loop = session.loop
            recovery.resume(socket, pid, auth["offset"]?.stringValue) { missed in
                loop.execute {
                    socket.completeConnect(pid: missed == nil ? recovery.newSession(socket) : pid, missed: missed)
                }
            }
        }
    }

    /// What every line of this connection has, with `fields`.
    private func lineFields(_ fields: Logger.Metadata) -> Logger.Metadata {
        var all = fields
        all["sid"] = .string(session.id)
        all["transport"] = .string(session.transportName)
        all["client"] = .string(session.clientAddress)
        all["request_id"] = .string(session.handshake.requestID)
        if let userID { all["user"] = .string(userID) }
        return all
    }

    /// The server ends `socket` (see `SocketIOSocket.disconnect`).
    func disconnect(_ socket: SocketIOSocket, reason: String) {
        guard sockets[socket.namespace] === socket else { return }
        send(SocketIOPacket(.disconnect, namespace: socket.namespace))
        sockets.removeValue(forKey: socket.namespace)
        ended(socket, reason: reason)
        session.closeAfterFlush(reason: reason)
    }

    func sessionDidClose(_ session: EngineIOSession, reason: String) {
        connectionLog.debug("session closed", metadata: lineFields(["reason": .string(reason), "duration_ms": .stringConvertible(openFor)]))
        closed = true
        connectTimer?.cancel()
        for socket in sockets.values { ended(socket, reason: reason) }
        sockets.removeAll()
    }

    /// A socket is gone, for whichever reason: its line, then the application is told.
    private func ended(_ socket: SocketIOSocket, reason: String) {
        var fields = lineFields(["namespace": .string(socket.namespace), "reason": .string(reason), "duration_ms": .stringConvertible(openFor)])
        fields["user"] = socket.userID.map { .string($0) }
        connectionLog.info("disconnected", metadata: fields)
        server.connectedSockets.subtract(1, ordering: .relaxed)
        socket.didDisconnect(reason: reason)
    }

    /// How long the session has been open, in milliseconds.
    private var openFor: Int64 { MonotonicClock.milliseconds() - session.openedAt }
}
