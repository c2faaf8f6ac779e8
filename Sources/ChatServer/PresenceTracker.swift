import ChatCore
import JSON
import ServerRuntime
import SocketIO
import SocketIOServer
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Presence: a user is online while at least one of their sockets is connected (on this
/// process). Going offline waits out a grace period — a socket that reconnects within it
/// changes nothing — so a flapping connection does not storm anyone. On a change, everyone
/// the user has a conversation with and who is connected gets `presence {user, online,
/// last_seen}`; `last_seen` is stored when the user goes offline, in batches.
final class PresenceTracker: Sendable {
    private struct State {
        var sockets: [String: Int] = [:]
        /// Users whose last socket went, waiting out the grace period, by a token the
        /// timer checks (a reconnect removes it).
        var leaving: [String: UInt64] = [:]
        var nextToken: UInt64 = 0
        /// Offline times not yet written, and whether a write is scheduled.
        var unwritten: [String: String] = [:]
        var writeScheduled = false
    }

    private let state = Locked(State())
    private let store: any ChatStore
    private let rooms: SocketIORooms
    private let blocks: BlockList
    let graceMilliseconds: Int64
    let writeDelayMilliseconds: Int64 = 1_000

    init(store: any ChatStore, rooms: SocketIORooms, blocks: BlockList, graceMilliseconds: Int64 = 5_000) {
        self.store = store
        self.rooms = rooms
        self.blocks = blocks
        self.graceMilliseconds = graceMilliseconds
    }

    /// Counts the socket in; says `online` to the user's contacts unless they were still
    /// counted as online (another socket, or a reconnect within the grace period).
    func attach(_ socket: SocketIOSocket, userID: String) {
        let cameOnline = state.withLock { state in
            state.sockets[userID, default: 0] += 1
            let returning = state.leaving.removeValue(forKey: userID) != nil
            return state.sockets[userID] == 1 && !returning
        }
        if cameOnline { announce(userID, online: true, lastSeen: nil) }
        let loop = socket.loop
        socket.onDisconnect { [self] _ in detach(userID, on: loop) }
    }

    private func detach(_ userID: String, on loop: EventLoop) {
        let token: UInt64? = state.withLock { state in
            state.sockets[userID, default: 1] -= 1
            guard state.sockets[userID] == 0 else { return nil }
            state.sockets.removeValue(forKey: userID)
            state.nextToken += 1
            state.leaving[userID] = state.nextToken
            return state.nextToken
        }
        guard let token else { return }
        _ = loop.schedule(after: graceMilliseconds) { [self] in
            let time = Self.now()
            let gone: Bool = state.withLock { state in
                guard state.leaving[userID] == token else { return false }
                state.leaving.removeValue(forKey: userID)
                state.unwritten[userID] = time
                return true
            }
            guard gone else { return }
            announce(userID, online: false, lastSeen: time)
            scheduleWrite(on: loop)
        }
    }

    /// Online (on this process) and when last seen (nil: never, or unknown user), as `asker`
    /// may see it: between a blocker and the blocked, always offline and never seen.
    func presence(of userID: String, to asker: String,
                  completion: @escaping @Sendable (Result<(online: Bool, lastSeen: String?)?, StoreError>) -> Void) {
        let hidden = blocks.separates(userID, asker)
        let (online, unwritten) = state.withLock { state in
            (state.sockets[userID, default: 0] > 0 || state.leaving[userID] != nil, state.unwritten[userID])
        }
        store.lastSeen(of: userID) { result in
            completion(result.map { stored in stored.map { hidden ? (false, nil) : (online, unwritten ?? $0) } })
        }
    }

    private func scheduleWrite(on loop: EventLoop) {
        let schedule = state.withLock { state in
            defer { state.writeScheduled = true }
            return !state.writeScheduled
        }
        guard schedule else { return }
        _ = loop.schedule(after: writeDelayMilliseconds) { [self] in
            let times = state.withLock { state in
                defer { state.unwritten = [:]; state.writeScheduled = false }
                return state.unwritten.map { (userID: $0.key, time: $0.value) }
            }
            guard !times.isEmpty else { return }
            store.recordLastSeen(times) { result in
                if case .failure(let error) = result { Log.warning("last_seen of \(times.count) users not stored: \(error)") }
            }
        }
    }

    /// At shutdown: everyone connected, leaving or not yet written is last seen now, written
    /// before the database goes (up to the time-out). True when written.
    func recordEveryoneSeen(timeoutMilliseconds: Int64) -> Bool {
        let time = Self.now()
        let times: [(userID: String, time: String)] = state.withLock { state in
            var users = state.unwritten
            for user in state.sockets.keys { users[user] = time }
            for user in state.leaving.keys { users[user] = time }
            state.unwritten = [:]
            return users.map { (userID: $0.key, time: $0.value) }
        }
        guard !times.isEmpty else { return true }
        let done = Locked(false)
        store.recordLastSeen(times) { result in
            if case .failure(let error) = result { Log.warning("last_seen of \(times.count) users not stored at shutdown: \(error)") }
            done.withLock { $0 = true }
        }
        return MonotonicClock.wait(upTo: timeoutMilliseconds) { done.withLock { $0 } }
    }

    private func announce(_ userID: String, online: Bool, lastSeen: String?) {
        store.peers(of: userID) { [rooms, blocks] result in
            guard case .success(let all) = result else { return }
            let peers = all.filter { !blocks.separates(userID, $0) }
            guard !peers.isEmpty else { return }
            let packet = SocketIOSocket.eventPacket("presence", [["user": .string(userID), "online": .bool(online),
                                                                   "last_seen": lastSeen.map(JSONValue.string) ?? .null]], namespace: "/").encoded()
            for (_, sockets) in rooms.members(of: peers) {
                for socket in sockets where socket.namespace == "/" { socket.loop.execute { socket.sendEncoded(packet) } }
            }
        }
    }

    /// Now, in the wire form (ISO-8601 UTC with milliseconds).
    static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = Int(spec.tv_nsec / 1_000_000)
        let fraction = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
    }
}
