import ChatCore
import JSON
import ServerRuntime
import SocketIO
import SocketIOServer

/// `typing {to, typing}`: ephemeral, never stored. Relayed as `typing {from, typing}` to the
/// peer's connected sockets only, for a peer the sender has a conversation with. A `true`
/// lasts `expiryMilliseconds` unless repeated (clients repeat it every few seconds while the
/// user types): then, or when the socket goes, the peer gets `false`. How many a user may send
/// is `EventRateLimits`' (`SocketRateLimiter`).
struct TypingRelay: Sendable {
    let store: any ChatStore
    let rooms: SocketIORooms
    let blocks: BlockList
    /// The peer's sockets on other processes are told through them.
    var signals: ClusterSignals?
    var expiryMilliseconds: Int64 = 6_000

    /// Other processes' typing (`t <from> <to> 1|0`) is relayed to the sockets here.
    func listen() {
        signals?.on("t") { [self] _, arguments in
            guard arguments.count == 3, let from = Validation.uuid(String(arguments[0])), let to = Validation.uuid(String(arguments[1])) else { return }
            relayHere(typing: arguments[2] == "1", from: from, to: to)
        }
    }

    /// One socket's typing: confined to its loop (the database's answer is brought back to it).
    final class State: @unchecked Sendable {
        /// Peers this socket may tell (a conversation exists), and those being asked about.
        var knownPeers: Set<String> = []
        var checking: [String: [(Bool, SocketIOSocket.Ack?)]] = [:]
        /// Peers told `true`, each with the timer that turns it `false`.
        var active: [String: LoopTimer] = [:]
    }

    func attach(to socket: SocketIOSocket, userID: String) {
        let state = State()
        socket.on("typing") { arguments, _, ack in
            handle(arguments.first, from: socket, userID: userID, state: state, ack: ack)
        }
        socket.onDisconnect { _ in
            for (peer, timer) in state.active {
                timer.cancel()
                relay(typing: false, from: userID, to: peer)
            }
            state.active.removeAll()
        }
    }

    private func handle(_ payload: JSONValue?, from socket: SocketIOSocket, userID: String, state: State, ack: SocketIOSocket.Ack?) {
        guard let to = payload?["to"]?.stringValue.flatMap(Validation.uuid) else {
            return ack?([["ok": false, "error": "to must be a user id (UUID)"]]) ?? ()
        }
        guard case .bool(let typing)? = payload?["typing"] else { return ack?([["ok": false, "error": "typing must be true or false"]]) ?? () }
        guard to != userID else { return ack?([["ok": false, "error": "typing to yourself is not relayed"]]) ?? () }
        // Between a blocker and the blocked nothing is relayed, and the answer does not say so.
        guard !blocks.separates(userID, to) else { return ack?([["ok": true]]) ?? () }
        if state.knownPeers.contains(to) { return apply(typing, from: socket, userID: userID, to: to, state: state, ack: ack) }
        // First time to this peer from this socket: is there a conversation? Asked once.
        if state.checking[to] != nil {
            state.checking[to]?.append((typing, ack))
            return
        }
        guard state.checking.count < 16 else { return ack?([["ok": false, "error": "too many typing events; slow down"]]) ?? () }
        state.checking[to] = [(typing, ack)]
        store.conversationExists(between: userID, and: to) { result in
            socket.loop.execute {
                let waiting = state.checking.removeValue(forKey: to) ?? []
                let known = (try? result.get()) ?? false
                if known { state.knownPeers.insert(to) }
                for (typing, ack) in waiting {
                    if known {
                        apply(typing, from: socket, userID: userID, to: to, state: state, ack: ack)
                    } else {
                        let error = result.isFailure ? "typing could not be checked; try again" : "no conversation with that user: typing is only relayed to people you have exchanged messages with"
                        ack?([["ok": false, "error": .string(error)]])
                    }
                }
            }
        }
    }

    private func apply(_ typing: Bool, from socket: SocketIOSocket, userID: String, to peer: String, state: State, ack: SocketIOSocket.Ack?) {
        guard socket.isConnected else { return }
        state.active.removeValue(forKey: peer)?.cancel()
        if typing {
            state.active[peer] = socket.loop.schedule(after: expiryMilliseconds) { [weak state] in
                guard let state, state.active.removeValue(forKey: peer) != nil else { return }
                relay(typing: false, from: userID, to: peer)
            }
        }
        relay(typing: typing, from: userID, to: peer)
        ack?([["ok": true]])
    }

    /// To the peer's sockets here and on every other process.
    private func relay(typing: Bool, from userID: String, to peer: String) {
        relayHere(typing: typing, from: userID, to: peer)
        signals?.send("t", userID, peer, typing ? "1" : "0")
    }

    /// `2["typing",{"from","typing"}]` to every socket of `peer` on this process, encoded once.
    private func relayHere(typing: Bool, from userID: String, to peer: String) {
        guard !blocks.separates(userID, peer), let sockets = rooms.members(of: [peer])[peer] else { return }
        let packet = SocketIOSocket.eventPacket("typing", [["from": .string(userID), "typing": .bool(typing)]], namespace: "/").encoded()
        for socket in sockets where socket.namespace == "/" {
            socket.loop.execute { socket.sendEncoded(packet) }
        }
    }
}

private extension Result {
    var isFailure: Bool { if case .failure = self { true } else { false } }
}
