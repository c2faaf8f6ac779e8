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
            let packet = SocketIOPacket(binaries.isEmpty ? .ack : .binaryAck, namespace: socket.namespace, ackID: id,
                                        data: .array(values), attachments: binaries.count)
            socket.transmit(packet.encoded(), attachments: binaries, position: nil)
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
    /// Run in the order added, with the reason, when the socket disconnects.
    private var disconnectHandlers: [(String) -> Void] = []
    /// Connection state recovery is on for this socket: the application ends every event with
    /// its offset. Fixed at CONNECT, so any thread may read it.
    public let recovers: Bool
    /// The recovery session's id, once the CONNECT reply is out (nil when `recovers` is off).
    public private(set) var pid: String?
    /// This socket resumed an earlier session, having been sent what that one missed.
    public private(set) var recovered = false
    /// What the socket sent before its CONNECT reply left (with the stream position of each
    /// live event): sent after the reply and the replayed events. nil once connected.
    private var beforeConnect: [(text: [UInt8], attachments: [[UInt8]], position: Int64?)]? = []
    /// Through where the resume replayed the stream: a live event at or before it was in the
    /// replay (a process that delivers late — behind other processes' writes — still sends it).
    private var replayedThrough = Int64.min

    init(id: String, namespace: String, connection: SocketIOConnection, loop: EventLoop, rooms: SocketIORooms, userID: String?,
         recovers: Bool = false) {
        self.id = id
        self.namespace = namespace
        self.connection = connection
        self.loop = loop
        self.rooms = rooms
        self.userID = userID
        self.recovers = recovers
    }

    public func on(_ event: String, _ handler: @escaping Handler) { handlers[event] = handler }

    /// The request that opened the socket's Engine.IO session (nil once it has closed).
    public var handshake: EngineIOHandshake? { connection?.handshake }

    /// Asked first about every event the client sends, with or without a handler: false drops
    /// it (the gate answers the client itself, if at all).
    public var eventGate: ((_ event: String, _ arguments: ArraySlice<JSONValue>, _ ack: Ack?) -> Bool)?

    /// Adds what to do when the socket disconnects (each part of an application adds its own).
    public func onDisconnect(_ handler: @escaping (String) -> Void) { disconnectHandlers.append(handler) }

    public func emit(_ event: String, _ arguments: [JSONValue], attachments: [[UInt8]] = []) {
        transmit(Self.eventPacket(event, arguments, namespace: namespace, attachments: attachments.count).encoded(),
                 attachments: attachments, position: nil)
    }

    /// Sends an already encoded packet (a room broadcast encodes once for all its members).
    /// `position`: where a live event is in the order recovery replays (see `SocketIORecovery`).
    public func sendEncoded(_ text: [UInt8], position: Int64? = nil) {
        transmit(text, attachments: [], position: position)
    }

    func transmit(_ text: [UInt8], attachments: [[UInt8]], position: Int64?) {
        guard isConnected, position.map({ $0 > replayedThrough }) ?? true else { return }
        if beforeConnect != nil {
            beforeConnect?.append((text, attachments, position))
            return
        }
        connection?.sendEncoded(text)
        for attachment in attachments { connection?.sendBinary(attachment) }
    }

    /// Sends the CONNECT reply (`{sid}`, and `pid` for a recovering socket), then what a resumed
    /// session missed, then what the socket was given meanwhile and was not among those.
    func completeConnect(pid: String?, missed: SocketIORecovery.Missed?) {
        guard isConnected, let held = beforeConnect else { return }
        beforeConnect = nil
        self.pid = pid
        recovered = missed != nil
        var data = JSONObject([("sid", .string(id))])
        if let pid { data["pid"] = .string(pid) }
        connection?.send(SocketIOPacket(.connect, namespace: namespace, data: .object(data)))
        for packet in missed?.packets ?? [] { connection?.sendEncoded(packet) }
        replayedThrough = missed?.position ?? .min
        for (text, attachments, position) in held {
            transmit(text, attachments: attachments, position: position)
        }
    }

    public static func eventPacket(_ event: String, _ arguments: [JSONValue], namespace: String, attachments: Int = 0) -> SocketIOPacket {
        SocketIOPacket(attachments > 0 ? .binaryEvent : .event, namespace: namespace, data: .array([.string(event)] + arguments), attachments: attachments)
    }

    /// Back-pressure: nothing more is read from this socket's connection (every namespace on
    /// it) until `resumeInput`, so the client's sends slow down instead of being refused.
    public func pauseInput() { connection?.pauseInput() }
    public func resumeInput() { connection?.resumeInput() }

    public func join(_ room: String) {
        guard isConnected, joined.insert(room).inserted else { return }
        rooms.add(self, to: room)
    }

    func handleEvent(_ arguments: [JSONValue], attachments: [[UInt8]], ackID: Int?) {
        guard let name = arguments.first?.stringValue else { return }
        let ack = ackID.map { Ack(id: $0, socket: self) }
        if let eventGate, !eventGate(name, arguments.dropFirst(), ack) { return }
        guard let handler = handlers[name] else { return }
        handler(arguments.dropFirst(), attachments, ack)
    }

    /// Ends the socket from the server's side: what was sent to it leaves first, then its
    /// DISCONNECT packet, then the connection closes (a client the server disconnects does not
    /// reconnect by itself). Its disconnect handlers run now, with `reason`.
    public func disconnect(reason: String) {
        guard isConnected else { return }
        if beforeConnect != nil { completeConnect(pid: nil, missed: nil) }
        connection?.disconnect(self, reason: reason)
    }

    func didDisconnect(reason: String) {
        guard isConnected else { return }
        connected = false
        for room in joined { rooms.remove(self, from: room) }
        joined.removeAll()
        for handler in disconnectHandlers { handler(reason) }
        handlers.removeAll()
        disconnectHandlers.removeAll()
        eventGate = nil
    }
}
