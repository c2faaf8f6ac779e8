// SocketIOServer: Engine.IO v4 and Socket.IO v5 on the HTTP server. The Engine.IO server
// (handshake, polling and WebSocket transports, the upgrade, heartbeats) and its sessions;
// above them a generic Socket.IO server: namespaces with a CONNECT check, events with acks,
// binary attachments, rooms across event loops. Applications (the chat, the conformance
// targets) register namespaces; nothing here knows what a chat message is.
//
// May import: HTTPServer, ServerRuntime, and the codecs SocketIO, WebSocket, JSON, Base64.

import JSON
import ServerRuntime
import SocketIO

/// What a namespace says to a CONNECT: who the socket is, or why not.
public enum SocketIOAuthorization: Sendable {
    case accepted(userID: String?)
    case refused(message: String, data: JSONValue? = nil)
}

/// A Socket.IO namespace an application registers: its CONNECT check and what to do with
/// each socket that connects. Both run on the socket's loop.
public struct SocketIONamespace: Sendable {
    public let name: String
    public let authorize: @Sendable (_ auth: JSONValue?, _ handshake: EngineIOHandshake) -> SocketIOAuthorization
    /// With the CONNECT payload (`auth`), which the socket does not keep.
    public let onConnect: @Sendable (_ socket: SocketIOSocket, _ auth: JSONValue) -> Void

    public init(name: String, authorize: @escaping @Sendable (_ auth: JSONValue?, _ handshake: EngineIOHandshake) -> SocketIOAuthorization,
                onConnect: @escaping @Sendable (_ socket: SocketIOSocket, _ auth: JSONValue) -> Void) {
        self.name = name
        self.authorize = authorize
        self.onConnect = onConnect
    }
}

/// A generic Socket.IO v5 server over Engine.IO: namespaces, events with acks, binary
/// attachments, and rooms that span every event loop. The chat is one application of it.
public final class SocketIOServer: Sendable {
    let namespaces: [String: SocketIONamespace]
    let connectTimeoutMilliseconds: Int64
    let rooms: SocketIORooms

    public init(namespaces: [SocketIONamespace], rooms: SocketIORooms = SocketIORooms(), connectTimeoutMilliseconds: Int64 = 45_000) {
        self.namespaces = Dictionary(uniqueKeysWithValues: namespaces.map { ($0.name, $0) })
        self.rooms = rooms
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
    }

    /// The Socket.IO side of a new Engine.IO session (`EngineIOServer`'s `makeDelegate`).
    public func makeConnection(for session: EngineIOSession) -> EngineIOSessionDelegate {
        SocketIOConnection(server: self, session: session)
    }
}
