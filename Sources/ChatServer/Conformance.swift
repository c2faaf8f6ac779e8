import JSON
import WebSocket

/// `ChatServer conformance`: the Engine.IO/Socket.IO layers configured the way the official
/// protocol test suites expect (their READMEs, "Test suite"), and a WebSocket echo for the
/// Autobahn|Testsuite. No database, no JWT; for testing only.
///
/// - `/engine.io/`: Engine.IO with pingInterval 300 ms, pingTimeout 200 ms; every message echoed.
/// - `/socket.io/`: the same timings, connectTimeout 1000 ms; namespaces `/` and `/custom`
///   send an `auth` event with the CONNECT payload; `message` → `message-back`,
///   `message-with-ack` → ack, with the same arguments and attachments.
/// - any other path: a WebSocket echo (messages up to 64 MiB).
enum Conformance {
    static func router() -> any HTTPHandler {
        var options = EngineIOOptions()
        options.pingIntervalMilliseconds = 300
        options.pingTimeoutMilliseconds = 200
        let echo = EngineIOServer(options: options) { _ in EngineIOEcho() }
        let socketIO = SocketIOServer(namespaces: [testNamespace("/"), testNamespace("/custom")], connectTimeoutMilliseconds: 1000)
        let socket = EngineIOServer(options: options) { session in socketIO.makeClient(for: session) }
        return ConformanceRouter(engineEcho: echo, socketIO: socket)
    }

    private static func testNamespace(_ name: String) -> SocketIONamespace {
        SocketIONamespace(name: name, authorize: { _, _ in .accepted(userID: nil) }) { socket, auth in
            socket.emit("auth", [auth])
            socket.on("message") { arguments, attachments, _ in
                socket.emit("message-back", Array(arguments), attachments: attachments)
            }
            socket.on("message-with-ack") { arguments, attachments, ack in
                ack?(Array(arguments), attachments)
            }
        }
    }
}

private struct ConformanceRouter: HTTPHandler {
    let engineEcho: EngineIOServer
    let socketIO: EngineIOServer

    func handle(_ request: HTTPRequest, on loop: EventLoop, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        switch request.path {
        case "/engine.io/", "/engine.io": engineEcho.handle(request, loop: loop, respond: respond)
        case "/socket.io/", "/socket.io": socketIO.handle(request, loop: loop, respond: respond)
        default:
            switch WebSocketHandshake.validate(method: request.method, minorVersion: request.minorVersion, header: request.combinedHeader) {
            case .failure(let refusal):
                respond(.error(refusal.status, refusal.message, headers: refusal.headers.map { ($0.key, $0.value) }))
            case .success(let accept):
                var response = HTTPResponse(status: 101, headers: [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)])
                response.takeover = { fd, leftover in
                    let connection = WebSocketConnection(fd: fd, loop: loop, leftover: leftover, maxMessageBytes: 64 << 20, maxPendingOutput: 128 << 20)
                    connection.delegate = WebSocketEcho()
                }
                respond(response)
            }
        }
    }
}

/// Sends every Engine.IO message back to its session.
private final class EngineIOEcho: EngineIOSessionDelegate {
    func session(_ session: EngineIOSession, receivedText text: [UInt8]) { session.send(text: text) }
    func session(_ session: EngineIOSession, receivedBinary bytes: [UInt8]) { session.send(binary: bytes) }
    func sessionDidClose(_ session: EngineIOSession, reason: String) {}
}

/// Sends every WebSocket message back.
private final class WebSocketEcho: WebSocketDelegate {
    func webSocket(_ connection: WebSocketConnection, received message: WebSocketMessage) {
        switch message {
        case .text(let bytes): connection.send(text: bytes)
        case .binary(let bytes): connection.send(binary: bytes)
        default: break
        }
    }

    func webSocketDidClose(_ connection: WebSocketConnection) {}
}
