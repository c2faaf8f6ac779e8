import Base64
import CLinux
import HTTPServer
import JSON
import Logging
import ServerRuntime
import SocketIO
import Synchronization
import WebSocket

/// What an Engine.IO session reports to the application above it (Socket.IO, or the echo of
/// the conformance mode), on the session's loop.
public protocol EngineIOSessionDelegate: AnyObject {
    func session(_ session: EngineIOSession, receivedText text: [UInt8])
    func session(_ session: EngineIOSession, receivedBinary bytes: [UInt8])
    func sessionDidClose(_ session: EngineIOSession, reason: String)
}

public struct EngineIOOptions: Sendable {
    public var pingIntervalMilliseconds: Int64 = 25_000
    public var pingTimeoutMilliseconds: Int64 = 20_000
    public var maxPayload = 1_000_000
    /// Starts every session id (then a dot): which process has the session, for a load
    /// balancer that routes polling requests by their `sid`.
    public var sessionIDPrefix = ""

    public init() {}
}

/// Engine.IO v4 on one path: the handshake, the polling and WebSocket transports, the upgrade
/// between them, and the registry of sessions. A session lives on the loop that opened it;
/// requests for it that arrive on another loop (polling uses several TCP connections) are
/// handed to that loop, and an upgrading WebSocket's socket moves there.
public final class EngineIOServer: HTTPHandler {
    /// Where it is mounted, e.g. `/socket.io/` (also answered without the final slash).
    public let path: String
    let options: EngineIOOptions
    private let sessions = Locked<[String: EngineIOSession]>([:])
    /// Sessions a client closed by POST while no poll was pending: the next poll, if it comes
    /// within a second, gets the noop that ends it (the reference server's `shouldClose`).
    private let closingPolls = Locked<[String: Int64]>([:])
    private let makeDelegate: @Sendable (EngineIOSession) -> EngineIOSessionDelegate
    /// Sessions per client address, open and new a second; nil: no caps.
    private let caps: ConnectionCaps?
    /// Shutting down (`stopTakingInput`): no new session.
    private let stopping = Atomic<Bool>(false)

    public init(path: String, options: EngineIOOptions, caps: ConnectionCaps? = nil,
                makeDelegate: @escaping @Sendable (EngineIOSession) -> EngineIOSessionDelegate) {
        self.path = path.hasSuffix("/") ? path : path + "/"
        self.options = options
        self.caps = caps
        self.makeDelegate = makeDelegate
    }

    public var sessionCount: Int { sessions.withLock { $0.count } }

    /// Sessions on a WebSocket (opened on one, or upgraded); the others poll.
    public var webSocketSessionCount: Int { webSocketSessions.load(ordering: .relaxed) }
    let webSocketSessions = Atomic<Int>(0)

    func remove(_ session: EngineIOSession) {
        sessions.withLock { _ = $0.removeValue(forKey: session.id) }
        caps?.release(session.clientAddress)
    }

    /// A handshake past its address's caps: 429 with the reason and `Retry-After`, before any
    /// session exists (open sessions are untouched).
    private func overCaps(_ request: HTTPRequest) -> HTTPResponse? {
        if stopping.load(ordering: .relaxed) {
            // A client retries its connection (socket.io's reconnection), through a balancer to
            // another process.
            return .json(503, ["code": 503, "message": "the server is shutting down"], headers: [("Retry-After", "1"), ("Access-Control-Allow-Origin", "*")])
        }
        guard let refusal = caps?.admit(request.clientAddress) else { return nil }
        return .json(429, ["code": 429, "message": .string(refusal.message)],
                     headers: [("Retry-After", String(refusal.retryAfterSeconds)), ("Access-Control-Allow-Origin", "*")])
    }

    func lookup(_ id: String) -> EngineIOSession? { sessions.withLock { $0[id] } }

    /// Server shutdown, first step: no new session, and nothing more read from the open ones
    /// (sticky: back-pressure's resume does not undo it), while what they are owed — acks of
    /// what was taken, deliveries — still goes out. Returns once every session's loop has
    /// stopped its input (or after `timeoutMilliseconds`): what the loops handed the
    /// application before then was taken while the application still takes input, and nothing
    /// comes after. What a client sends from now on waits in its socket (a polling POST is
    /// held, then refused at the close) and is neither taken nor answered as taken, so a
    /// client that resends what was not acknowledged (socket.io's `retries`, with a
    /// `client_id` to be stored once) sends it to the process it reconnects to, and its user
    /// is never told "try again".
    public func stopTakingInput(timeoutMilliseconds: Int64 = 1_000) {
        // Under the sessions' lock: a session `open` registers after this sees the flag.
        let all = sessions.withLock { sessions -> [EngineIOSession] in
            stopping.store(true, ordering: .relaxed)
            return Array(sessions.values)
        }
        let pending = Atomic<Int>(all.count)
        for session in all {
            session.loop.execute {
                session.stopInput()
                pending.subtract(1, ordering: .releasing)
            }
        }
        _ = MonotonicClock.wait(upTo: timeoutMilliseconds) { pending.load(ordering: .acquiring) == 0 }
    }

    /// Server shutdown: every session ends, each on its own loop (see `closeAfterFlush`);
    /// waits up to `timeoutMilliseconds` for polling clients to collect what they are owed.
    public func closeAllSessions(timeoutMilliseconds: Int64) {
        let all = sessions.withLock { Array($0.values) }
        for session in all {
            session.loop.execute { session.closeAfterFlush(reason: "server shutting down") }
        }
        _ = MonotonicClock.wait(upTo: timeoutMilliseconds) { sessionCount == 0 }
        for session in sessions.withLock({ Array($0.values) }) {
            session.loop.execute { session.close(reason: "server shutting down") }
        }
    }

    func expectClosingPoll(for id: String) {
        let now = MonotonicClock.milliseconds()
        closingPolls.withLock { polls in
            polls = polls.filter { $0.value > now }
            polls[id] = now + 1000
        }
    }

    func takeClosingPoll(_ id: String) -> Bool {
        let now = MonotonicClock.milliseconds()
        return closingPolls.withLock { polls in (polls.removeValue(forKey: id) ?? 0) > now }
    }

    /// Error answers as the reference server gives them.
    static func refusal(_ code: Int, _ message: String) -> HTTPResponse {
        .json(400, ["code": .number(Double(code)), "message": .string(message)], headers: [("Access-Control-Allow-Origin", "*")])
    }

    /// True for a request under this server's path, with or without its final slash.
    public func serves(_ request: HTTPRequest) -> Bool {
        request.path == path || request.path == path.dropLast()
    }

    /// This server at its path, in front of `fallback`, which answers every other request —
    /// and, with `preflightsGoToFallback`, the CORS preflights (OPTIONS) under the path too,
    /// for an application that answers preflights for all its routes in one place.
    public func mounted(over fallback: any HTTPHandler, preflightsGoToFallback: Bool = false) -> any HTTPHandler {
        EngineIOMount(engine: self, fallback: fallback, preflightsGoToFallback: preflightsGoToFallback)
    }

    /// Answers a request under the Engine.IO path. Runs on the loop of the HTTP connection.
    public func handle(_ request: HTTPRequest, on loop: EventLoop, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        guard request.queryParameter("EIO") == "4" else { return respond(Self.refusal(5, "Unsupported protocol version")) }
        let sid = request.queryParameter("sid")
        switch request.queryParameter("transport") {
        case "polling":
            guard let sid else {
                guard request.method == "GET" else { return respond(Self.refusal(2, "Bad handshake method")) }
                if let refusal = overCaps(request) { return respond(refusal) }
                let session = open(on: loop, handshake: request)
                return respond(Self.pollingResponse(EngineIOPacket.encode(payload: [session.openPacket(upgrades: ["websocket"])])))
            }
            guard let session = lookup(sid) else {
                if request.method == "GET", takeClosingPoll(sid) { return respond(Self.pollingResponse(EngineIOPacket(.noop).encodedText())) }
                return respond(Self.refusal(1, "Session ID unknown"))
            }
            guard request.method == "GET" || request.method == "POST" else { return respond(Self.refusal(2, "Bad request")) }
            let method = request.method, body = request.body
            session.loop.execute { session.handlePolling(method: method, body: body, respond: respond) }
        case "websocket":
            let maxPayload = options.maxPayload
            guard let sid else {
                let upgrade = HTTPResponse.webSocketUpgrade(request) { [self] fd, leftover in
                    let connection = WebSocketConnection(fd: fd, loop: loop, leftover: leftover, maxMessageBytes: maxPayload)
                    let session = open(on: loop, handshake: request)
                    session.attachWebSocket(connection)
                    connection.send(text: session.openPacket(upgrades: []).encodedText())
                }
                if upgrade.status == 101, let refusal = overCaps(request) { return respond(refusal) }
                return respond(upgrade)
            }
            let session = lookup(sid)
            respond(.webSocketUpgrade(request) { fd, leftover in
                guard let session else {
                    // Unknown or closed session: accept, then close (clients expect a 101 first).
                    let connection = WebSocketConnection(fd: fd, loop: loop, leftover: [], maxMessageBytes: maxPayload)
                    return connection.close(code: .policyViolation, reason: "Session ID unknown")
                }
                session.loop.execute {
                    let connection = WebSocketConnection(fd: fd, loop: session.loop, leftover: leftover, maxMessageBytes: maxPayload)
                    session.beginUpgrade(connection)
                }
            })
        default:
            respond(Self.refusal(0, "Transport unknown"))
        }
    }

    private func open(on loop: EventLoop, handshake: HTTPRequest) -> EngineIOSession {
        let session = EngineIOSession(id: options.sessionIDPrefix.isEmpty ? Self.makeSessionID() : options.sessionIDPrefix + "." + Self.makeSessionID(), loop: loop, server: self, options: options,
                                      handshake: EngineIOHandshake(target: handshake.target, requestID: handshake.requestID), clientAddress: handshake.clientAddress)
        let stopping = sessions.withLock { sessions -> Bool in
            sessions[session.id] = session
            return self.stopping.load(ordering: .relaxed)
        }
        caps?.opened(session.clientAddress)
        connectionLog.debug("session opened", metadata: ["sid": .string(session.id), "transport": .string(session.transportName),
                                                          "client": .string(session.clientAddress), "request_id": .string(handshake.requestID)])
        session.delegate = makeDelegate(session)
        session.startHeartbeat()
        // Passed the check in `overCaps` as the stop began: stopped here, before any input.
        if stopping { session.stopInput() }
        return session
    }

    static func pollingResponse(_ body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; charset=UTF-8"), ("Access-Control-Allow-Origin", "*")], body: body)
    }

    /// 20 random URL-safe characters, like the reference server's ids.
    static func makeSessionID() -> String {
        var bytes = [UInt8](repeating: 0, count: 15)
        _ = getrandom(&bytes, bytes.count, 0)
        return Base64.encodeURL(bytes)
    }
}

private struct EngineIOMount: HTTPHandler {
    let engine: EngineIOServer
    let fallback: any HTTPHandler
    let preflightsGoToFallback: Bool

    func handle(_ request: HTTPRequest, on loop: EventLoop, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        if engine.serves(request) && !(preflightsGoToFallback && request.method == "OPTIONS") {
            // The transport's requests log at debug (its sessions have their own lines at info),
            // its refusals (caps, a stop, a bad request) at info.
            engine.handle(request, on: loop) { response in
                var response = response
                if response.status < 400 { response.accessLogLevel = .debug }
                respond(response)
            }
        } else {
            fallback.handle(request, on: loop, respond: respond)
        }
    }
}
