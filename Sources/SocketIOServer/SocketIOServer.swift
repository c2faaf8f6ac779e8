// SocketIOServer: Engine.IO v4 and Socket.IO v5 on the HTTP server. The Engine.IO server
// (handshake, polling and WebSocket transports, the upgrade, heartbeats) and its sessions;
// above them a generic Socket.IO server: namespaces with a CONNECT check, events with acks,
// binary attachments, rooms across event loops. Applications (the chat, the conformance
// targets) register namespaces; nothing here knows what a chat message is.
//
// May import: HTTPServer, ServerRuntime, and the codecs SocketIO, WebSocket, JSON, Base64.

import JSON
import ServerRuntime
import Synchronization
import SocketIO

/// What a namespace says to a CONNECT: who the socket is, or why not.
public enum SocketIOAuthorization: Sendable {
    case accepted(userID: String?)
    case refused(message: String, data: JSONValue? = nil)
}

/// A Socket.IO namespace an application registers: its CONNECT check and what to do with
/// each socket that connects. Both are called on the socket's loop; the check answers when
/// it can, on any thread (it may have to ask a database).
public struct SocketIONamespace: Sendable {
    public typealias Authorize = @Sendable (_ auth: JSONValue?, _ handshake: EngineIOHandshake,
                                            _ answer: @escaping @Sendable (SocketIOAuthorization) -> Void) -> Void
    public let name: String
    public let authorize: Authorize
    /// With the CONNECT payload (`auth`), which the socket does not keep. Runs before the
    /// CONNECT reply leaves: what the socket sends meanwhile follows the reply.
    public let onConnect: @Sendable (_ socket: SocketIOSocket, _ auth: JSONValue) -> Void
    public let recovery: SocketIORecovery?
    /// Asked on the socket's loop once `authorize` accepted, just before the socket is made
    /// (and `onConnect` runs, in the same turn): a refusal's message, or nil to go on.
    public let admit: (@Sendable (_ userID: String?) -> String?)?

    public init(name: String, authorize: @escaping Authorize,
                onConnect: @escaping @Sendable (_ socket: SocketIOSocket, _ auth: JSONValue) -> Void, recovery: SocketIORecovery? = nil,
                admit: (@Sendable (_ userID: String?) -> String?)? = nil) {
        self.name = name
        self.authorize = authorize
        self.onConnect = onConnect
        self.recovery = recovery
        self.admit = admit
    }
}

/// Connection state recovery as socket.io 4.6+ speaks it, with the missed events supplied by
/// the application from wherever it keeps them. A recovering socket's CONNECT reply carries a
/// `pid`; the application ends each event it sends such a socket with its offset (a string);
/// a client reconnecting with `{pid, offset}` in its CONNECT auth gets the same `pid` back (so
/// `socket.recovered` is true) and the events after its offset, then live ones — or a new
/// `pid` when the application cannot replay them.
public struct SocketIORecovery: Sendable {
    public enum Scope: Sendable {
        /// Every socket of the namespace (socket.io's `connectionStateRecovery` option).
        case everySocket
        /// Only sockets whose CONNECT auth has `"recover": true` — or a `pid`, from a session
        /// that recovered before — since offsets appended to events would surprise others.
        case whenAsked
    }

    /// The events a resumed session missed, each encoded and ending with its offset, in order;
    /// `position` is where the last of them is in the application's order (the offset's own
    /// position when none was missed). Live events the socket was sent meanwhile at or before
    /// `position` are left out, later ones follow: nothing twice, nothing lost.
    public struct Missed: Sendable {
        public let packets: [[UInt8]]
        public let position: Int64

        public init(packets: [[UInt8]], position: Int64) {
            self.packets = packets
            self.position = position
        }
    }

    public let scope: Scope
    /// A new session's pid, for a socket whose application state is set up (it runs after
    /// `onConnect`, on the socket's loop).
    public let newSession: @Sendable (_ socket: SocketIOSocket) -> String
    /// What the session `pid` missed after `offset` (nil when the client had no event yet);
    /// nil when it cannot be replayed whole. Called after `onConnect`, so the socket already
    /// receives live events (held until the reply); `completion` may run on any thread.
    public let resume: @Sendable (_ socket: SocketIOSocket, _ pid: String, _ offset: String?,
                                  _ completion: @escaping @Sendable (Missed?) -> Void) -> Void

    public init(scope: Scope, newSession: @escaping @Sendable (_ socket: SocketIOSocket) -> String,
                resume: @escaping @Sendable (_ socket: SocketIOSocket, _ pid: String, _ offset: String?,
                                             _ completion: @escaping @Sendable (Missed?) -> Void) -> Void) {
        self.scope = scope
        self.newSession = newSession
        self.resume = resume
    }
}

/// A generic Socket.IO v5 server over Engine.IO: namespaces, events with acks, binary
/// attachments, and rooms that span every event loop. The chat is one application of it.
public final class SocketIOServer: Sendable {
    let namespaces: [String: SocketIONamespace]
    let connectTimeoutMilliseconds: Int64
    let rooms: SocketIORooms
    /// Sockets connected (past CONNECT, in a namespace), for the metrics.
    let connectedSockets = Atomic<Int>(0)
    public var connectedSocketCount: Int { connectedSockets.load(ordering: .relaxed) }

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
