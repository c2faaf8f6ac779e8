import Foundation
import JSON
import JWT
import WebSocket
import XCTest

/// The real-time endpoint at the byte level: Engine.IO refusals, WebSocket protocol errors
/// with their close codes, and clients that vanish mid-frame. The well-behaved paths are
/// covered with python-socketio (Tests/IntegrationTests/python).
final class RealtimeProtocolTests: XCTestCase {
    nonisolated(unsafe) static var server: ServerProcess?
    var port: Int { Self.server!.port }
    let signer = JWTSigner(secret: IntegrationSecrets.jwtSecret)

    override func setUpWithError() throws {
        if Self.server == nil {
            let database = try TestEnvironment.current().createDatabase("realtime")
            try database.migrate()
            // One test sends 2,500 messages as fast as acks come back (a script's pace, past the
            // default per-user limit), another opens 30 sockets of one user that vanish: these
            // tests are about the protocol, not those limits.
            Self.server = try database.startServer(["MESSAGE_BURST": "0", "SOCKETS_PER_USER": "0"])
        }
    }

    override class func tearDown() {
        server?.stop()
        server = nil
    }

    private func register(_ name: String) throws -> (id: String, token: String) {
        let client = HTTPTestClient(port: port)
        let email = "\(name)-\(UUID().uuidString.prefix(8))@example.com"
        _ = try client.postJSON("/api/auth/register", ["username": .string(name), "email": .string(email), "password": "password1"])
        let login = try client.postJSON("/api/auth/login", ["email": .string(email), "password": "password1"])
        return (try XCTUnwrap(login.json?["user"]?["id"]?.stringValue), try XCTUnwrap(login.json?["token"]?.stringValue))
    }

    /// A Socket.IO client over WebSocket, connected to `/` with `token`.
    private func connectedSocket(token: String) throws -> RawWebSocket {
        let socket = try RawWebSocket(port: port, path: "/socket.io/?EIO=4&transport=websocket")
        let open = try XCTUnwrap(socket.receiveText())
        XCTAssertTrue(open.hasPrefix("0{\"sid\":"), open)
        XCTAssertEqual(try JSONParser.parse(String(open.dropFirst()))["upgrades"], [])
        socket.sendText(#"40{"token":"\#(token)"}"#)
        let connected = try XCTUnwrap(socket.receiveText())
        XCTAssertTrue(connected.hasPrefix(#"40{"sid":""#), connected)
        return socket
    }

    func testEngineIORefusalsAreTheReferenceServers() throws {
        let client = HTTPTestClient(port: port)
        let cases: [(String, String, JSONValue)] = [
            ("GET", "/socket.io/?EIO=3&transport=polling", ["code": 5, "message": "Unsupported protocol version"]),
            ("GET", "/socket.io/?transport=polling", ["code": 5, "message": "Unsupported protocol version"]),
            ("GET", "/socket.io/?EIO=4&transport=carrier-pigeon", ["code": 0, "message": "Transport unknown"]),
            ("GET", "/socket.io/?EIO=4&transport=polling&sid=nope", ["code": 1, "message": "Session ID unknown"]),
            ("POST", "/socket.io/?EIO=4&transport=polling", ["code": 2, "message": "Bad handshake method"]),
        ]
        for (method, path, body) in cases {
            let response = try client.request(method, path, body: method == "POST" ? Array("4x".utf8) : nil)
            XCTAssertEqual(response.status, 400, path)
            XCTAssertEqual(response.json, body, path)
        }
        let handshake = try client.get("/socket.io/?EIO=4&transport=polling")
        XCTAssertEqual(handshake.status, 200)
        XCTAssertEqual(handshake.header("access-control-allow-origin"), "*")
        let open = try JSONParser.parse(Array(handshake.body.dropFirst()))
        XCTAssertEqual(open.objectValue?.members.map(\.key), ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"])
        XCTAssertEqual(open["pingInterval"], 25000)
        XCTAssertEqual(open["pingTimeout"], 20000)
        XCTAssertEqual(open["maxPayload"], 1_000_000)
    }

    func testAWrongWebSocketVersionIs426() throws {
        let response = try HTTPTestClient(port: port).request("GET", "/socket.io/?EIO=4&transport=websocket", headers: [
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "8",
        ])
        XCTAssertEqual(response.status, 426)
        XCTAssertEqual(response.header("sec-websocket-version"), "13")
    }

    func testConnectErrorsOverRawWebSocket() throws {
        let socket = try RawWebSocket(port: port, path: "/socket.io/?EIO=4&transport=websocket")
        _ = socket.receiveText()
        socket.sendText("40")
        XCTAssertEqual(socket.receiveText(), #"44{"message":"No token"}"#)
        socket.sendText(#"40{"token":"forged"}"#)
        XCTAssertEqual(socket.receiveText(), #"44{"message":"Invalid token"}"#)
        socket.sendText("40/admin,")
        XCTAssertEqual(socket.receiveText(), #"44/admin,{"message":"Invalid namespace"}"#)
        let expired = signer.sign(userID: UUID().uuidString.lowercased(), issuedAt: Int64(Date().timeIntervalSince1970) - 7200)
        socket.sendText(#"40{"token":"\#(expired)"}"#)
        XCTAssertEqual(socket.receiveText(), #"44{"message":"Invalid token"}"#)
    }

    func testProtocolViolationsCloseWithTheRightCode() throws {
        let (_, token) = try register("hostile")
        let cases: [(RawWebSocket) -> Void] = [
            { $0.send(.text, Array("4hello".utf8), masked: false) },  // 1002: unmasked
            { $0.send(.text, [0x34, 0xED, 0xA0, 0x80]) },  // 1007: a surrogate in UTF-8
            { $0.connection.send([0x82, 0xFF, 0, 0, 0, 0, 0, 0x20, 0, 0, 1, 2, 3, 4]) },  // 1009: 2 MiB declared
            { $0.connection.send([0x8B, 0x80, 1, 2, 3, 4]) },  // 1002: opcode 11
        ]
        let codes: [UInt16] = [1002, 1007, 1009, 1002]
        for (send, code) in zip(cases, codes) {
            let socket = try connectedSocket(token: token)
            send(socket)
            XCTAssertEqual(socket.receiveClose(), code)
        }
    }

    func testInvalidPacketsEndTheSession() throws {
        let (_, token) = try register("garbled")
        for garbage in ["abc", "4abc", #"42{"not":"an array"}"#, "9"] {
            let socket = try connectedSocket(token: token)
            socket.sendText(garbage)
            XCTAssertNotNil(socket.receiveClose(), garbage)
        }
    }

    func testClientsVanishingMidFrameDoNotDisturbOthers() throws {
        let ann = try register("ann"), bob = try register("bob")
        for _ in 0..<30 {
            let socket = try connectedSocket(token: ann.token)
            // Half of a 1000-byte frame, then the TCP connection just goes away.
            let frame = WebSocketFrameEncoder.frame(.text, payload: Array(("42" + String(repeating: "x", count: 998)).utf8), maskingKey: (9, 9, 9, 9))
            socket.connection.send(Array(frame.prefix(500)))
        }
        let sender = try connectedSocket(token: ann.token)
        let receiver = try connectedSocket(token: bob.token)
        sender.sendText(#"421["send_message",{"to":"\#(bob.id)","message":"still here"}]"#)
        let ack = try XCTUnwrap(sender.receiveText().flatMap { text -> String? in
            text.hasPrefix("431") ? text : sender.receiveText()
        })
        XCTAssertTrue(ack.hasPrefix(#"431[{"ok":true,"#), ack)
        let delivered = try XCTUnwrap(receiver.receiveText())
        XCTAssertTrue(delivered.hasPrefix(#"42["receive_message",{"from":"\#(ann.id)","message":"still here""#), delivered)
    }

    /// A receiver that stops reading must not make the server buffer without end: past its
    /// output limit the server closes it (1008, "client is not reading") and drops what it
    /// held, while the sender's messages are all acknowledged and stored.
    func testAReceiverThatStopsReadingIsDisconnectedAndTheSenderLosesNothing() throws {
        let ann = try register("ann"), bob = try register("bob")
        let stalled = try connectedSocket(token: bob.token)  // never read again until the end
        let sender = try connectedSocket(token: ann.token)
        let text = String(repeating: "z", count: 12_000)
        let count = 2_500  // 30 MB towards bob: far more than kernel buffers and the 4 MiB limit hold
        var sent = 0, acknowledged = 0
        while acknowledged < count {
            while sent < count && sent - acknowledged < 50 {
                sender.sendText(#"42\#(sent)["send_message",{"to":"\#(bob.id)","message":"\#(text)"}]"#)
                sent += 1
            }
            guard let answer = sender.receiveText(timeout: 20) else { return XCTFail("no answer after \(acknowledged) acks") }
            if answer.hasPrefix("43") {
                XCTAssertTrue(answer.contains(#"[{"ok":true,"#), String(answer.prefix(200)))
                acknowledged += 1
            }
        }
        let (bytes, ended) = stalled.connection.receiveUntilClosed(timeout: 30)
        XCTAssertTrue(ended, "the server ended the stalled connection")
        XCTAssertLessThan(bytes.count, count * text.count / 2, "what it held for the stalled reader was dropped, not kept")

        let client = HTTPTestClient(port: port)
        let last = try client.get("/api/messages/\(ann.id)?limit=1&offset=\(count - 1)", token: bob.token)
        XCTAssertEqual(last.json?.arrayValue?.count, 1, "all \(count) messages are in bob's history")
        let beyond = try client.get("/api/messages/\(ann.id)?limit=1&offset=\(count)", token: bob.token)
        XCTAssertEqual(beyond.json?.arrayValue?.count, 0)

        // Bob comes back and chats as usual.
        let again = try connectedSocket(token: bob.token)
        sender.sendText(#"42["send_message",{"to":"\#(bob.id)","message":"welcome back"}]"#)
        let delivered = try XCTUnwrap(again.receiveText())
        XCTAssertTrue(delivered.hasPrefix(#"42["receive_message",{"from":"\#(ann.id)","message":"welcome back""#), delivered)
    }
}
