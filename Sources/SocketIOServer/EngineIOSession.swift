import HTTPServer
import JSON
import ServerRuntime
import SocketIO
import Synchronization
import WebSocket

/// One Engine.IO session, confined to its loop: its transport (polling, or a WebSocket after
/// a handshake or an upgrade), the packets waiting for a poll, and the heartbeat.
public final class EngineIOSession: WebSocketDelegate, @unchecked Sendable {
    public let id: String
    public unowned let loop: EventLoop
    private unowned let server: EngineIOServer
    private let options: EngineIOOptions
    var delegate: EngineIOSessionDelegate?
    // Private storage behind a public getter: a public stored property would keep its
    // dynamic exclusivity checks on every packet sent (callgrind showed them).
    private var closed = false
    public var isClosed: Bool { closed }

    private var webSocket: WebSocketConnection?
    /// A WebSocket that sent `2probe` but not yet `5`.
    private var probe: WebSocketConnection?
    private var upgrading = false
    private var queue: [EngineIOPacket] = []
    private var pendingPoll: (@Sendable (HTTPResponse) -> Void)?
    /// Why the session ends once a polling client has collected what is queued for it.
    private var draining: String?
    static let maxPacketsPerPoll = 16
    /// A polling client that lets this many packets pile up is not polling: it is dropped.
    static let maxQueuedPackets = 10_000
    private var pingTimer: LoopTimer?
    /// While upgrading: when a held poll is released with a noop (unless `5` comes first).
    private var releaseTimer: LoopTimer?
    private var pongTimer: LoopTimer?
    /// The application asked for no more input for now (back-pressure): a WebSocket is not
    /// read; a polling client's POST (all of whose packets are still handled) is answered only
    /// at `resumeInput` or after `maxPostHoldMilliseconds` (it sends one POST at a time).
    private var inputPaused = false
    /// Paused for good: the server is shutting down (`stopInput`).
    private var inputStopped = false
    private var heldPostAnswer: (@Sendable (HTTPResponse) -> Void)?
    /// The held POST's packets were not taken (the server is stopping): refused when answered.
    private var heldPostDropped = false
    private var postHoldTimer: LoopTimer?
    /// python-engineio gives up on a POST after 5 s: a held one is answered before that even
    /// while the pause lasts (the next POST is held again).
    static let maxPostHoldMilliseconds: Int64 = 2_500
    /// Input was paused while a pong was awaited: the pong may be unread behind what the
    /// client sent before it, so its lateness is ours, not the client's.
    private var pausedSincePing = false
    /// Pongs waited for in vain in a row while paused: past `maxPongWaitsWhilePaused` the
    /// client is taken for gone even so (a pause that long means a database that long away).
    private var pongWaitsWhilePaused = 0
    static let maxPongWaitsWhilePaused = 3
    private var pingSentAt: Int64 = 0

    public let handshake: EngineIOHandshake
    /// Where the client connected from (counted against its address's caps while open).
    let clientAddress: String
    /// When it opened (`MonotonicClock.milliseconds`), for its length in the closing log line.
    let openedAt = MonotonicClock.milliseconds()
    /// What it runs on now, as the log and the metrics name it.
    var transportName: String { webSocket != nil ? "websocket" : "polling" }

    init(id: String, loop: EventLoop, server: EngineIOServer, options: EngineIOOptions, handshake: EngineIOHandshake, clientAddress: String = "") {
        self.id = id
        self.clientAddress = clientAddress
        self.handshake = handshake
        self.loop = loop
        self.server = server
        self.options = options
    }

    func openPacket(upgrades: [String]) -> EngineIOPacket {
        let handshake: JSONValue = ["sid": .string(id), "upgrades": .array(upgrades.map(JSONValue.string)),
                                    "pingInterval": .number(Double(options.pingIntervalMilliseconds)),
                                    "pingTimeout": .number(Double(options.pingTimeoutMilliseconds)),
                                    "maxPayload": .number(Double(options.maxPayload))]
        return EngineIOPacket(.open, JSONWriter.bytes(handshake))
    }

    // MARK: - Sending

    public func send(text: [UInt8]) { send(EngineIOPacket(.message, text)) }
    public func send(binary: [UInt8]) { send(.binary(binary)) }

    func send(_ packet: EngineIOPacket) {
        guard !isClosed else { return }
        if let webSocket {
            if packet.isBinary { webSocket.send(binary: packet.data) } else { webSocket.send(text: packet.encodedText()) }
        } else {
            queue.append(packet)
            if queue.count > Self.maxQueuedPackets { return close(reason: "client is not polling") }
            flushPoll()
        }
    }

    private func flushPoll() {
        guard let respond = pendingPoll, !queue.isEmpty || draining != nil else { return }
        pendingPoll = nil
        // python-engineio refuses a payload of more than 16 packets: the rest waits for the next poll.
        let count = min(queue.count, Self.maxPacketsPerPoll)
        var packets = Array(queue.prefix(count))
        queue.removeFirst(count)
        if let reason = draining, queue.isEmpty && packets.count < Self.maxPacketsPerPoll {
            // The last of what was owed, with the close packet: the session ends here.
            packets.append(EngineIOPacket(.close))
            respond(EngineIOServer.pollingResponse(EngineIOPacket.encode(payload: packets)))
            return close(reason: reason)
        }
        respond(EngineIOServer.pollingResponse(EngineIOPacket.encode(payload: packets)))
    }

    /// Ends the session once what is queued has left: a WebSocket closes now (its frames are
    /// already on their way, before the close frame); a polling client first collects what is
    /// queued for it, poll after poll, then gets the close packet.
    public func closeAfterFlush(reason: String) {
        guard !isClosed, draining == nil else { return }
        if webSocket != nil || queue.isEmpty {
            return close(reason: reason)
        }
        draining = reason
        flushPoll()
    }

    // MARK: - Back-pressure

    /// No more input from the client until `resumeInput`: what it sends waits in its socket's
    /// buffers (its sends slow down) instead of being read and refused. Heartbeats go on.
    public func pauseInput() {
        guard !isClosed, !inputPaused else { return }
        inputPaused = true
        pausedSincePing = true
        webSocket?.pauseReading()
    }

    public func resumeInput() {
        guard !isClosed, inputPaused, !inputStopped else { return }
        inputPaused = false
        answerHeldPost()
        webSocket?.resumeReading()
    }

    /// No more input until the session ends (server shutdown, see
    /// `EngineIOServer.stopTakingInput`).
    func stopInput() {
        pauseInput()
        inputStopped = true
    }

    private static let postAccepted = HTTPResponse(status: 200, headers: [("Content-Type", "text/html"), ("Access-Control-Allow-Origin", "*")],
                                                   body: Array("ok".utf8))

    // MARK: - Heartbeat

    func startHeartbeat() {
        pingTimer = loop.schedule(after: options.pingIntervalMilliseconds) { [weak self] in self?.sendPing() }
    }

    private func sendPing() {
        guard !isClosed else { return }
        send(EngineIOPacket(.ping))
        pingSentAt = loop.now
        pausedSincePing = inputPaused
        pongTimer = loop.schedule(after: options.pingTimeoutMilliseconds) { [weak self] in
            guard let self else { return }
            // Paused meanwhile, the pong may be unread: ping again and wait again (a client
            // that stays silent a whole wait while it is read is gone). The client answers
            // every ping, so it keeps hearing from us: python-engineio gives up on a connection
            // that has had nothing to send for max(pingInterval, pingTimeout) + 5 s.
            if self.pausedSincePing && self.pongWaitsWhilePaused < Self.maxPongWaitsWhilePaused {
                self.pongWaitsWhilePaused += 1
                return self.sendPing()
            }
            self.close(reason: "ping timeout")
        }
    }

    private func receivedPong() {
        guard pongTimer != nil else { return }
        pongTimer?.cancel()
        pongTimer = nil
        pongWaitsWhilePaused = 0
        pingTimer?.cancel()
        // An interval after the last ping, not after this pong: a pong read late (input paused)
        // would otherwise space the pings wider than clients allow for.
        pingTimer = loop.schedule(after: max(0, pingSentAt + options.pingIntervalMilliseconds - loop.now)) { [weak self] in self?.sendPing() }
    }

    // MARK: - Polling

    func handlePolling(method: String, body: [UInt8], respond: @escaping @Sendable (HTTPResponse) -> Void) {
        guard !isClosed else {
            // Looked up just before the client's close ran: it still gets the noop that ends it.
            if method == "GET", server.takeClosingPoll(id) { return respond(EngineIOServer.pollingResponse(EngineIOPacket(.noop).encodedText())) }
            return respond(EngineIOServer.refusal(1, "Session ID unknown"))
        }
        if webSocket != nil { return respond(EngineIOServer.refusal(3, "Bad request")) }
        if method == "GET" {
            if let pending = pendingPoll {
                // Two polls at once is a broken client: end the session.
                pendingPoll = nil
                pending(EngineIOServer.pollingResponse(EngineIOPacket(.close).encodedText()))
                respond(EngineIOServer.refusal(3, "Bad request"))
                return close(reason: "overlapping polls")
            }
            pendingPoll = respond
            if upgrading { return scheduleRelease() }
            flushPoll()
            return
        }
        guard heldPostAnswer == nil else {
            // A second POST while the first is unanswered is a broken client, as two polls at
            // once (the reference server: "data request overlap").
            respond(EngineIOServer.refusal(3, "Bad request"))
            return close(reason: "overlapping POSTs")
        }
        guard body.count <= options.maxPayload else {
            respond(HTTPResponse.error(413, "Payload too large"))
            return close(reason: "payload too large")
        }
        let packets: [EngineIOPacket]
        do {
            packets = try EngineIOPacket.decode(payload: body)
        } catch {
            respond(EngineIOServer.refusal(3, "Bad request"))
            return close(reason: "parse error")
        }
        if inputStopped {
            // The server is stopping: what this POST carries is not taken (as a WebSocket's
            // frames stay unread); it is refused at the close, so the client knows.
            heldPostAnswer = respond
            heldPostDropped = true
            return
        }
        for packet in packets where !isClosed { receive(packet) }
        // Paused by what it carried: the client's next POST waits for this answer.
        guard inputPaused && !isClosed else { return respond(Self.postAccepted) }
        heldPostAnswer = respond
        postHoldTimer = loop.schedule(after: Self.maxPostHoldMilliseconds) { [weak self] in
            guard let self, !self.inputStopped else { return }  // stopping: answered at the close
            self.answerHeldPost()
        }
    }

    private func answerHeldPost() {
        postHoldTimer?.cancel()
        postHoldTimer = nil
        guard let answer = heldPostAnswer else { return }
        heldPostAnswer = nil
        if heldPostDropped {
            heldPostDropped = false
            return answer(.json(503, ["code": 503, "message": "the server is shutting down"], headers: [("Access-Control-Allow-Origin", "*")]))
        }
        answer(Self.postAccepted)
    }

    private func receive(_ packet: EngineIOPacket) {
        switch packet.kind {
        case .pong: receivedPong()
        case .message:
            if packet.isBinary { delegate?.session(self, receivedBinary: packet.data) } else { delegate?.session(self, receivedText: packet.data) }
        case .close:
            if let pending = pendingPoll {
                pendingPoll = nil
                pending(EngineIOServer.pollingResponse(EngineIOPacket(.noop).encodedText()))
            } else {
                // The poll that completes this close may still be on its way (another connection).
                server.expectClosingPoll(for: id)
            }
            close(reason: "client close")
        case .ping, .noop, .upgrade, .open:
            // Clients do not send these outside the upgrade; the reference server treats them as errors.
            close(reason: "unexpected packet")
        }
    }

    // MARK: - WebSocket

    func attachWebSocket(_ connection: WebSocketConnection) {
        useWebSocket(connection)
        connection.delegate = self
    }

    /// The session's transport is this WebSocket from now on (counted once, for metrics).
    private func useWebSocket(_ connection: WebSocketConnection) {
        if webSocket == nil { server.webSocketSessions.add(1, ordering: .relaxed) }
        webSocket = connection
    }

    /// A WebSocket arrived for this polling session: probe, then switch on `5`.
    func beginUpgrade(_ connection: WebSocketConnection) {
        guard !isClosed, webSocket == nil, probe == nil else {
            return connection.close(code: .policyViolation, reason: "already upgraded")
        }
        probe = connection
        connection.delegate = self
    }

    public func webSocket(_ connection: WebSocketConnection, received message: WebSocketMessage) {
        if connection === probe { return handleProbe(connection, message) }
        guard connection === webSocket else { return }
        switch message {
        case .text(let bytes):
            guard let packet = try? EngineIOPacket.decode(webSocketText: bytes) else { return close(reason: "parse error") }
            receive(packet)
        case .binary(let bytes):
            delegate?.session(self, receivedBinary: bytes)
        default:
            break
        }
    }

    private func handleProbe(_ connection: WebSocketConnection, _ message: WebSocketMessage) {
        guard case .text(let bytes) = message, let packet = try? EngineIOPacket.decode(webSocketText: bytes) else {
            probe = nil
            return connection.close(code: .protocolError, reason: "bad upgrade")
        }
        switch packet.kind {
        case .ping where packet.data == Array("probe".utf8):
            connection.send(text: EngineIOPacket(.pong, text: "probe").encodedText())
            upgrading = true
            scheduleRelease()
        case .upgrade where upgrading:
            probe = nil
            upgrading = false
            releaseTimer?.cancel()
            // A poll still held now crossed the upgrade: polling is over for this session.
            if let pending = pendingPoll {
                pendingPoll = nil
                pending(EngineIOServer.refusal(3, "Bad request"))
            }
            useWebSocket(connection)
            if inputPaused { connection.pauseReading() }
            let waiting = queue
            queue.removeAll()
            for packet in waiting { send(packet) }
        default:
            probe = nil
            upgrading = false
            connection.close(code: .protocolError, reason: "bad upgrade")
        }
    }

    /// A poll held during an upgrade is released with a noop soon (the reference server checks
    /// every 100 ms), so a client can finish the upgrade; `5` arriving first answers it 400.
    private func scheduleRelease() {
        guard releaseTimer == nil || releaseTimer!.isCancelled else { return }
        releaseTimer = loop.schedule(after: 50) { [weak self] in
            guard let self, let pending = self.pendingPoll else { return }
            self.pendingPoll = nil
            pending(EngineIOServer.pollingResponse(EngineIOPacket(.noop).encodedText()))
        }
    }

    public func webSocketDidClose(_ connection: WebSocketConnection) {
        if connection === probe {
            probe = nil
            upgrading = false
        } else if connection === webSocket {
            close(reason: "transport close")
        }
    }

    // MARK: - Closing

    /// Ends the session: timers off, out of the registry, the transport told (a pending poll
    /// gets the close packet, a WebSocket a close frame), the application told once.
    public func close(reason: String) {
        guard !isClosed else { return }
        closed = true
        pingTimer?.cancel()
        pongTimer?.cancel()
        releaseTimer?.cancel()
        server.remove(self)
        if webSocket != nil { server.webSocketSessions.subtract(1, ordering: .relaxed) }
        if let pending = pendingPoll {
            pendingPoll = nil
            pending(EngineIOServer.pollingResponse(EngineIOPacket(.close).encodedText()))
        }
        answerHeldPost()
        if let webSocket {
            webSocket.delegate = nil
            webSocket.close(code: .normal)
        }
        probe?.close(code: .goingAway)
        probe = nil
        delegate?.sessionDidClose(self, reason: reason)
        delegate = nil
    }
}

/// What a session keeps of the request that opened it: the target, whose query carries e.g. a
/// `token`. Not its headers: an idle session should hold as little as it can, and header
/// strings were a third of an idle connection's memory.
public struct EngineIOHandshake: Sendable {
    public let target: String
    /// The opening request's id (`HTTPRequest.requestID`), in the session's log lines.
    public var requestID = ""

    public func queryParameter(_ name: String) -> String? {
        HTTPRequest.query(of: target).flatMap { HTTPRequest.queryParameter(name, in: $0) }
    }
}
