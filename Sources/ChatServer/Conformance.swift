import HTTPServer
import JSON
import ServerRuntime
import SocketIOServer
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
        let echo = EngineIOServer(path: "/engine.io/", options: options) { _ in EngineIOEcho() }
        let socketIO = SocketIOServer(namespaces: [testNamespace("/"), testNamespace("/custom")], connectTimeoutMilliseconds: 1000)
        let socket = EngineIOServer(path: "/socket.io/", options: options) { session in socketIO.makeConnection(for: session) }
        return echo.mounted(over: socket.mounted(over: WebSocketEchoEndpoint()))
    }

    private static func testNamespace(_ name: String) -> SocketIONamespace {
        SocketIONamespace(name: name, authorize: { _, _, answer in answer(.accepted(userID: nil)) }) { socket, auth in
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

/// A WebSocket echo on any path (for the Autobahn|Testsuite).
private struct WebSocketEchoEndpoint: HTTPHandler {
    func handle(_ request: HTTPRequest, on loop: EventLoop, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        respond(.webSocketUpgrade(request) { fd, leftover in
            let connection = WebSocketConnection(fd: fd, loop: loop, leftover: leftover, maxMessageBytes: 64 << 20, maxPendingOutput: 128 << 20)
            connection.delegate = WebSocketEcho()
        })
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
