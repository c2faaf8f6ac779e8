import JSON
import SocketIO
import Synchronization

/// What a namespace says to a CONNECT: who the socket is, or why not.
enum SocketIOAuthorization {
    case accepted(userID: String?)
    case refused(message: String, data: JSONValue? = nil)
}

/// A Socket.IO namespace an application registers: its CONNECT check and what to do with
/// each socket that connects. Both run on the socket's loop.
struct SocketIONamespace: Sendable {
    let name: String
    let authorize: @Sendable (_ auth: JSONValue?, _ handshake: EngineIOHandshake) -> SocketIOAuthorization
    /// With the CONNECT payload (`auth`), which the socket does not keep.
    let onConnect: @Sendable (_ socket: SocketIOSocket, _ auth: JSONValue) -> Void
}

/// A generic Socket.IO v5 server over Engine.IO: namespaces, events with acks, binary
/// attachments, and rooms that span every event loop. The chat is one application of it.
final class SocketIOServer: Sendable {
    let namespaces: [String: SocketIONamespace]
    let connectTimeoutMilliseconds: Int64
    let rooms: SocketIORooms

    init(namespaces: [SocketIONamespace], rooms: SocketIORooms = SocketIORooms(), connectTimeoutMilliseconds: Int64 = 45_000) {
        self.namespaces = Dictionary(uniqueKeysWithValues: namespaces.map { ($0.name, $0) })
        self.rooms = rooms
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
    }

    func makeClient(for session: EngineIOSession) -> EngineIOSessionDelegate {
        SocketIOClient(server: self, session: session)
    }
}

/// The Socket.IO side of one Engine.IO session, confined to its loop.
final class SocketIOClient: EngineIOSessionDelegate {
    private let server: SocketIOServer
    private unowned let session: EngineIOSession
    private var sockets: [String: SocketIOSocket] = [:]
    private var partial: (packet: SocketIOPacket, attachments: [[UInt8]])?
    private var connectTimer: LoopTimer?

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
            sockets.removeValue(forKey: packet.namespace)?.didDisconnect(reason: "client namespace disconnect")
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
        guard sockets[packet.namespace] == nil else { return }
        switch namespace.authorize(packet.data, session.handshake) {
        case .refused(let message, let data):
            var payload = JSONObject([("message", .string(message))])
            if let data { payload["data"] = data }
            send(SocketIOPacket(.connectError, namespace: packet.namespace, data: .object(payload)))
        case .accepted(let userID):
            connectTimer?.cancel()
            let socket = SocketIOSocket(id: EngineIOServer.makeSessionID(), namespace: packet.namespace, client: self,
                                        loop: session.loop, rooms: server.rooms, userID: userID)
            sockets[packet.namespace] = socket
            send(SocketIOPacket(.connect, namespace: packet.namespace, data: ["sid": .string(socket.id)]))
            namespace.onConnect(socket, packet.data ?? .object(JSONObject()))
        }
    }

    func sessionDidClose(_ session: EngineIOSession, reason: String) {
        connectTimer?.cancel()
        for socket in sockets.values { socket.didDisconnect(reason: reason) }
        sockets.removeAll()
    }
}

/// One connected socket of a namespace, confined to its loop.
final class SocketIOSocket: @unchecked Sendable {
    /// The answer an event with an ack id asks for: call it once, on the socket's loop. (A
    /// value, not a closure, so an event costs no allocation for it; the chat only takes
    /// its `id` and sends its pre-encoded answer with `sendEncoded`.)
    struct Ack: Sendable {
        let id: Int
        let socket: SocketIOSocket

        func callAsFunction(_ values: [JSONValue], _ binaries: [[UInt8]] = []) {
            guard socket.isConnected else { return }
            let packet = SocketIOPacket(binaries.isEmpty ? .ack : .binaryAck, namespace: socket.namespace, ackID: id,
                                        data: .array(values), attachments: binaries.count)
            socket.client?.send(packet, attachments: binaries)
        }
    }
    typealias Handler = (_ arguments: ArraySlice<JSONValue>, _ attachments: [[UInt8]], _ ack: Ack?) -> Void

    let id: String
    let namespace: String
    let userID: String?
    unowned let loop: EventLoop
    fileprivate weak var client: SocketIOClient?
    private let rooms: SocketIORooms
    private var handlers: [String: Handler] = [:]
    private var joined: Set<String> = []
    private(set) var isConnected = true
    var onDisconnect: ((String) -> Void)?

    init(id: String, namespace: String, client: SocketIOClient, loop: EventLoop, rooms: SocketIORooms, userID: String?) {
        self.id = id
        self.namespace = namespace
        self.client = client
        self.loop = loop
        self.rooms = rooms
        self.userID = userID
    }

    func on(_ event: String, _ handler: @escaping Handler) { handlers[event] = handler }

    func emit(_ event: String, _ arguments: [JSONValue], attachments: [[UInt8]] = []) {
        guard isConnected else { return }
        client?.send(Self.eventPacket(event, arguments, namespace: namespace, attachments: attachments.count), attachments: attachments)
    }

    /// Sends an already encoded packet (a room broadcast encodes once for all its members).
    func sendEncoded(_ text: [UInt8]) {
        guard isConnected else { return }
        client?.sendEncoded(text)
    }

    static func eventPacket(_ event: String, _ arguments: [JSONValue], namespace: String, attachments: Int = 0) -> SocketIOPacket {
        SocketIOPacket(attachments > 0 ? .binaryEvent : .event, namespace: namespace, data: .array([.string(event)] + arguments), attachments: attachments)
    }

    func join(_ room: String) {
        guard isConnected, joined.insert(room).inserted else { return }
        rooms.add(self, to: room)
    }

    func handleEvent(_ arguments: [JSONValue], attachments: [[UInt8]], ackID: Int?) {
        guard let name = arguments.first?.stringValue, let handler = handlers[name] else { return }
        handler(arguments.dropFirst(), attachments, ackID.map { Ack(id: $0, socket: self) })
    }

    func didDisconnect(reason: String) {
        guard isConnected else { return }
        isConnected = false
        for room in joined { rooms.remove(self, from: room) }
        joined.removeAll()
        onDisconnect?(reason)
        handlers.removeAll()
        onDisconnect = nil
    }
}

/// Rooms across loops: a room's members may live on any loop; whoever broadcasts encodes the
/// packet once and hands it to each member's loop.
final class SocketIORooms: Sendable {
    private let members = Mutex<[String: [ObjectIdentifier: SocketIOSocket]]>([:])

    func add(_ socket: SocketIOSocket, to room: String) {
        members.withLock { $0[room, default: [:]][ObjectIdentifier(socket)] = socket }
    }

    func remove(_ socket: SocketIOSocket, from room: String) {
        members.withLock { rooms in
            rooms[room]?.removeValue(forKey: ObjectIdentifier(socket))
            if rooms[room]?.isEmpty == true { rooms.removeValue(forKey: room) }
        }
    }

    /// The sockets in each of `rooms`, looked up under one lock (a batch of messages at once).
    func members(of rooms: some Sequence<String>) -> [String: [SocketIOSocket]] {
        members.withLock { members in
            var found: [String: [SocketIOSocket]] = [:]
            for room in rooms where found[room] == nil {
                if let sockets = members[room] { found[room] = Array(sockets.values) }
            }
            return found
        }
    }
}
