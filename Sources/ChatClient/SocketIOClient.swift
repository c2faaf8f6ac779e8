import Foundation
import JSON
import SocketIO

/// A Socket.IO v5 client on namespace `/`: CONNECT with an auth payload, events, acks.
/// Handlers run on `queue`.
final class SocketIOClient: @unchecked Sendable {
    typealias EventHandler = @Sendable ([JSONValue]) -> Void

    private let queue: DispatchQueue
    private var engine: EngineIOClient?
    private var handlers: [String: EventHandler] = [:]
    private var acks: [Int: @Sendable ([JSONValue]) -> Void] = [:]
    private var nextAckID = 0
    private var connectResult: Result<Void, ClientError>?
    /// The data of the server's CONNECT answer (`sid`, and `pid` with connection state recovery).
    private(set) var connectReply: JSONValue?
    private let connected = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    var onDisconnect: (@Sendable (String) -> Void)?
    /// Called on `queue` with the CONNECT reply's data, before any event that follows it.
    var onConnectReply: (@Sendable (JSONValue?) -> Void)?
    private var closed = false
    /// The connection has ended (set before `onDisconnect` is called).
    var isClosed: Bool { lock.lock(); defer { lock.unlock() }; return closed }

    init(queue: DispatchQueue) {
        self.queue = queue
    }

    func on(_ event: String, _ handler: @escaping EventHandler) {
        lock.lock(); handlers[event] = handler; lock.unlock()
    }

    /// Connects and waits for the server's CONNECT answer, whose data it returns; a
    /// CONNECT_ERROR throws its message.
    @discardableResult
    func connect(address: ServerAddress, transport: EngineIOClient.Transport, auth: JSONValue) throws -> JSONValue? {
        let engine = EngineIOClient(address: address, query: "", transport: transport, queue: queue, onPacket: { [weak self] packet in
            self?.receive(packet)
        }, onClose: { [weak self] reason in
            self?.markClosed()
            self?.finish(.failure(ClientError(reason)))
            self?.onDisconnect?(reason)
        })
        self.engine = engine
        try engine.open()
        engine.send(EngineIOPacket(.message, SocketIOPacket(.connect, data: auth).encoded()))
        guard connected.wait(timeout: .now() + 10) == .success else {
            engine.close()
            throw ClientError("the server did not answer the Socket.IO connect")
        }
        lock.lock(); let result = connectResult; let reply = connectReply; lock.unlock()
        if case .failure(let error) = result {
            engine.close()
            throw error
        }
        return reply
    }

    private func markClosed() {
        lock.lock(); closed = true; lock.unlock()
    }

    private func finish(_ result: Result<Void, ClientError>) {
        lock.lock()
        let first = connectResult == nil
        if first { connectResult = result }
        lock.unlock()
        if first { connected.signal() }
    }

    private func receive(_ packet: EngineIOPacket) {
        guard !packet.isBinary, let message = try? SocketIOPacket.decode(packet.data), message.namespace == "/" else { return }
        switch message.kind {
        case .connect:
            lock.lock(); connectReply = message.data; lock.unlock()
            onConnectReply?(message.data)
            finish(.success(()))
        case .connectError:
            finish(.failure(ClientError(message.data?["message"]?.stringValue ?? "connection refused")))
        case .event:
            guard case .array(let values)? = message.data, let name = values.first?.stringValue else { return }
            lock.lock(); let handler = handlers[name]; lock.unlock()
            handler?(Array(values.dropFirst()))
        case .ack:
            guard let id = message.ackID, case .array(let values)? = message.data else { return }
            lock.lock(); let callback = acks.removeValue(forKey: id); lock.unlock()
            callback?(values)
        case .disconnect:
            markClosed()
            engine?.close()
            onDisconnect?("the server disconnected this client")
        case .binaryEvent, .binaryAck:
            break
        }
    }

    func emit(_ event: String, _ arguments: [JSONValue], ack: (@Sendable ([JSONValue]) -> Void)? = nil) {
        var packet = SocketIOPacket(.event, data: .array([.string(event)] + arguments))
        if let ack {
            lock.lock()
            nextAckID += 1
            packet.ackID = nextAckID
            acks[nextAckID] = ack
            lock.unlock()
        }
        engine?.send(EngineIOPacket(.message, packet.encoded()))
    }

    func close() {
        engine?.close()
    }
}
