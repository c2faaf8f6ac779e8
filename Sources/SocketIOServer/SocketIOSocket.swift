import JSON
import ServerRuntime
import SocketIO

/// One connected socket of a namespace, confined to its loop.
public final class SocketIOSocket: @unchecked Sendable {
    /// The answer an event with an ack id asks for: call it once, on the socket's loop. (A
    /// value, not a closure, so an event costs no allocation for it; the chat only takes
    /// its `id` and sends its pre-encoded answer with `sendEncoded`.)
    public struct Ack: Sendable {
        public let id: Int
        let socket: SocketIOSocket

        public func callAsFunction(_ values: [JSONValue], _ binaries: [[UInt8]] = []) {
            guard socket.isConnected else { return }
            let packet = SocketIOPacket(binaries.isEmpty ? .ack : .binaryAck, namespace: socket.namespace, ackID: id,
                                        data: .array(values), attachments: binaries.count)
            socket.connection?.send(packet, attachments: binaries)
        }
    }
    public typealias Handler = (_ arguments: ArraySlice<JSONValue>, _ attachments: [[UInt8]], _ ack: Ack?) -> Void

    public let id: String
    public let namespace: String
    public let userID: String?
    public unowned let loop: EventLoop
    weak var connection: SocketIOConnection?
    private let rooms: SocketIORooms
    private var handlers: [String: Handler] = [:]
    private var joined: Set<String> = []
    // Private storage behind a public getter, as EngineIOSession.isClosed.
    private var connected = true
    public var isConnected: Bool { connected }
    public var onDisconnect: ((String) -> Void)?

    init(id: String, namespace: String, connection: SocketIOConnection, loop: EventLoop, rooms: SocketIORooms, userID: String?) {
        self.id = id
        self.namespace = namespace
        self.connection = connection
        self.loop = loop
        self.rooms = rooms
        self.userID = userID
    }

    public func on(_ event: String, _ handler: @escaping Handler) { handlers[event] = handler }

    public func emit(_ event: String, _ arguments: [JSONValue], attachments: [[UInt8]] = []) {
        guard isConnected else { return }
        connection?.send(Self.eventPacket(event, arguments, namespace: namespace, attachments: attachments.count), attachments: attachments)
    }

    /// Sends an already encoded packet (a room broadcast encodes once for all its members).
    public func sendEncoded(_ text: [UInt8]) {
        guard isConnected else { return }
        connection?.sendEncoded(text)
    }

    public static func eventPacket(_ event: String, _ arguments: [JSONValue], namespace: String, attachments: Int = 0) -> SocketIOPacket {
        SocketIOPacket(attachments > 0 ? .binaryEvent : .event, namespace: namespace, data: .array([.string(event)] + arguments), attachments: attachments)
    }

    public func join(_ room: String) {
        guard isConnected, joined.insert(room).inserted else { return }
        rooms.add(self, to: room)
    }

    func handleEvent(_ arguments: [JSONValue], attachments: [[UInt8]], ackID: Int?) {
        guard let name = arguments.first?.stringValue, let handler = handlers[name] else { return }
        handler(arguments.dropFirst(), attachments, ackID.map { Ack(id: $0, socket: self) })
    }

    func didDisconnect(reason: String) {
        guard isConnected else { return }
        connected = false
        for room in joined { rooms.remove(self, from: room) }
        joined.removeAll()
        onDisconnect?(reason)
        handlers.removeAll()
        onDisconnect = nil
    }
}
