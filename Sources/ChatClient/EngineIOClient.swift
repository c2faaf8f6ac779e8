import Foundation
import JSON
import ServerRuntime
import SocketIO
import WebSocket

/// The client side of Engine.IO v4 over WebSocket or long-polling, on threads of its own.
/// Events arrive on `queue`, in order.
final class EngineIOClient: @unchecked Sendable {
    enum Transport: String, Sendable { case websocket, polling }

    private let address: ServerAddress
    private let path: String
    private let query: String
    let transport: Transport
    private let queue: DispatchQueue
    private let onPacket: @Sendable (EngineIOPacket) -> Void
    private let onClose: @Sendable (String) -> Void
    private let lock = NSLock()
    private var closed = false
    private var sid = ""
    private var pingInterval: TimeInterval = 25
    private var pingTimeout: TimeInterval = 20
    /// When the server last pinged, in milliseconds on the monotonic clock.
    private var lastPing = MonotonicClock.milliseconds()
    // WebSocket
    private var socket: ClientSocket?
    // Polling
    private var pollClient: HTTPClient?
    private var sendClient: HTTPClient?
    private var sendQueue: [EngineIOPacket] = []
    private var sending = false

    init(address: ServerAddress, path: String = "/socket.io/", query: String, transport: Transport, queue: DispatchQueue,
         onPacket: @escaping @Sendable (EngineIOPacket) -> Void, onClose: @escaping @Sendable (String) -> Void) {
        self.address = address
        self.path = path
        self.query = query
        self.transport = transport
        self.queue = queue
        self.onPacket = onPacket
        self.onClose = onClose
    }

    private var target: String { "\(path)?EIO=4&transport=\(transport.rawValue)\(query.isEmpty ? "" : "&" + query)" }

    /// Opens the session (blocking until the open packet), then reads on a thread of its own.
    func open() throws {
        switch transport {
        case .websocket: try openWebSocket()
        case .polling: try openPolling()
        }
        lastPing = MonotonicClock.milliseconds()
        startWatchdog()
    }

    private func handleOpen(_ packet: EngineIOPacket) throws {
        guard packet.kind == .open, let handshake = try? JSONParser.parse(packet.data), let sid = handshake["sid"]?.stringValue else {
            throw ClientError("unexpected answer to the Engine.IO handshake")
        }
        self.sid = sid
        pingInterval = (handshake["pingInterval"]?.numberValue ?? 25000) / 1000
        pingTimeout = (handshake["pingTimeout"]?.numberValue ?? 20000) / 1000
    }

    // MARK: - WebSocket

    private var decoder = WebSocketDecoder(role: .client, maxMessageBytes: 100 << 20)

    private func openWebSocket() throws {
        let socket = try ClientSocket(host: address.host, port: address.port)
        let handshake = WebSocketClientHandshake()
        try socket.write(handshake.request(target: target, host: address.hostAndPort))
        do {
            decoder.feed(try handshake.awaitResponse { try socket.read(timeout: 10) })
        } catch let refusal as WebSocketClientHandshake.Refusal {
            throw ClientError(refusal.description)
        }
        guard let first = try nextWebSocketPacket(socket, timeout: 10) else { throw ClientError("no Engine.IO handshake") }
        try handleOpen(first)
        self.socket = socket
        Thread.detachNewThread { [self] in readWebSocket(socket) }
    }

    private func nextWebSocketPacket(_ socket: ClientSocket, timeout: TimeInterval?) throws -> EngineIOPacket? {
        while true {
            if let message = try decoder.next() {
                switch message {
                case .text(let bytes): return try EngineIOPacket.decode(webSocketText: bytes)
                case .binary(let bytes): return .binary(bytes)
                case .ping(let payload): try socket.write(WebSocketFrameEncoder.frame(.pong, payload: payload, maskingKey: Self.mask()))
                case .pong: continue
                case .close: return nil
                }
                continue
            }
            let chunk = try socket.read(timeout: timeout)
            guard !chunk.isEmpty else { return nil }
            decoder.feed(chunk)
        }
    }

    private func readWebSocket(_ socket: ClientSocket) {
        while true {
            let packet: EngineIOPacket?
            do { packet = try nextWebSocketPacket(socket, timeout: nil) } catch { return finish("connection lost: \(error)") }
            guard let packet else { return finish("the server closed the connection") }
            receive(packet)
        }
    }

    static func mask() -> (UInt8, UInt8, UInt8, UInt8) {
        (UInt8.random(in: 0...255), UInt8.random(in: 0...255), UInt8.random(in: 0...255), UInt8.random(in: 0...255))
    }

    // MARK: - Polling

    private func openPolling() throws {
        let client = HTTPClient(address: address)
        let response = try client.request("GET", target, timeout: 10)
        guard response.status == 200, let packets = try? EngineIOPacket.decode(payload: response.body), let first = packets.first else {
            throw ClientError("Engine.IO handshake refused (HTTP \(response.status))")
        }
        try handleOpen(first)
        pollClient = client
        sendClient = HTTPClient(address: address)
        Thread.detachNewThread { [self] in poll() }
    }

    private func poll() {
        while !isClosed {
            guard let client = pollClient else { return }
            let response: HTTPClientResponse
            do {
                response = try client.request("GET", "\(target)&sid=\(sid)", timeout: pingInterval + pingTimeout + 5)
            } catch {
                return finish("connection lost: \(error)")
            }
            guard response.status == 200, let packets = try? EngineIOPacket.decode(payload: response.body) else {
                return finish("the server ended the session (HTTP \(response.status))")
            }
            for packet in packets { receive(packet) }
        }
    }

    // MARK: - Both

    private var isClosed: Bool {
        lock.lock()
        defer { lock.unlock() }
        return closed
    }

    private func receive(_ packet: EngineIOPacket) {
        switch packet.kind {
        case .ping:
            lock.lock(); lastPing = MonotonicClock.milliseconds(); lock.unlock()
            send(EngineIOPacket(.pong))
        case .close:
            finish("the server closed the session")
        case .message:
            queue.async { self.onPacket(packet) }
        case .noop, .pong, .open, .upgrade:
            break
        }
    }

    /// Sends a packet; polling batches what queues up while a POST is in flight.
    func send(_ packet: EngineIOPacket) {
        guard !isClosed else { return }
        switch transport {
        case .websocket:
            guard let socket else { return }
            let frame = packet.isBinary
                ? WebSocketFrameEncoder.frame(.binary, payload: packet.data, maskingKey: Self.mask())
                : WebSocketFrameEncoder.frame(.text, payload: packet.encodedText(), maskingKey: Self.mask())
            do { try socket.write(frame) } catch { finish("connection lost while sending") }
        case .polling:
            lock.lock()
            sendQueue.append(packet)
            let start = !sending
            sending = true
            lock.unlock()
            if start { Thread.detachNewThread { [self] in drainSends() } }
        }
    }

    private func drainSends() {
        while true {
            lock.lock()
            let batch = sendQueue
            sendQueue.removeAll()
            if batch.isEmpty { sending = false }
            lock.unlock()
            guard !batch.isEmpty, let client = sendClient else { return }
            do {
                let response = try client.request("POST", "\(target)&sid=\(sid)", headers: [("Content-Type", "text/plain; charset=UTF-8")],
                                                  body: EngineIOPacket.encode(payload: batch), timeout: 20)
                guard response.status == 200 else { return finish("the server refused a message batch (HTTP \(response.status))") }
            } catch {
                return finish("connection lost while sending")
            }
        }
    }

    /// A server that stops pinging is gone (pingInterval + pingTimeout, as socket.io clients judge).
    private func startWatchdog() {
        Thread.detachNewThread { [self] in
            while !isClosed {
                Thread.sleep(forTimeInterval: 0.5)
                lock.lock()
                let silent = Double(MonotonicClock.milliseconds() - lastPing) / 1000
                lock.unlock()
                if silent > pingInterval + pingTimeout { return finish("the server stopped answering") }
            }
        }
    }

    /// Closes politely (a close packet), once.
    func close() {
        guard !isClosed else { return }
        switch transport {
        case .websocket:
            if let socket {
                try? socket.write(WebSocketFrameEncoder.frame(.text, payload: EngineIOPacket(.close).encodedText(), maskingKey: Self.mask()))
                try? socket.write(WebSocketFrameEncoder.frame(.close, payload: WebSocketFrameEncoder.closePayload(.normal), maskingKey: Self.mask()))
            }
        case .polling:
            _ = try? sendClient?.request("POST", "\(target)&sid=\(sid)", body: EngineIOPacket(.close).encodedText(), timeout: 2)
        }
        finish(nil)
    }

    private func finish(_ reason: String?) {
        lock.lock()
        if closed { lock.unlock(); return }
        closed = true
        lock.unlock()
        socket?.shutdown()
        pollClient?.abort()
        sendClient?.abort()
        if let reason { queue.async { self.onClose(reason) } }
    }
}
