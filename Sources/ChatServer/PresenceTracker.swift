import ChatCore
import JSON
import ServerRuntime
import SocketIO
import SocketIOServer
import Synchronization

#if canImport(Glibc)
import Glibc
#endif
import Logging

private let logger = Logger(label: "chat.presence")

/// Presence: a user is online while at least one of their sockets is connected, on this
/// process or another. Going offline here waits out a grace period — a socket that reconnects
/// within it changes nothing — so a flapping connection does not storm anyone. On a change,
/// everyone the user has a conversation with and who is connected gets `presence {user,
/// online, last_seen}`; `last_seen` is stored when the user goes offline, in batches.
///
/// Across processes (`ClusterSignals`): each says when a user comes online there (`o`) or
/// goes (`f`, after its grace), says it is alive every second (`h`), and on request (`?`)
/// lists who is online there (`R`, `O`…, `E`). Each process tells its own sockets of a change
/// only when the user's state changes across all of them; a process not heard from for
/// `processExpiryMilliseconds` is taken for dead and its users go offline (unless online
/// elsewhere), so a killed process's users do not stay online for ever.
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
        /// Users online on other processes, by process, and when each was last heard from.
        var elsewhere: [String: (heardAt: Int64, users: Set<String>)] = [:]
        /// A process's list being received (between its `R` and `E`), by process.
        var incoming: [String: Set<String>] = [:]
        /// No process is taken for dead before this (our listening connection was away, so
        /// their signals could not be heard).
        var noExpiryBefore: Int64 = 0

        func isHere(_ userID: String) -> Bool { sockets[userID, default: 0] > 0 || leaving[userID] != nil }

        func isElsewhere(_ userID: String, except process: String? = nil) -> Bool {
            elsewhere.contains { $0.key != process && $0.value.users.contains(userID) }
        }

        func isOnline(_ userID: String) -> Bool { isHere(userID) || isElsewhere(userID) }
    }

    private let state = Locked(State())
    private let store: any ChatStore
    private let rooms: SocketIORooms
    private let blocks: BlockList
    private let signals: ClusterSignals?
    let graceMilliseconds: Int64
    let writeDelayMilliseconds: Int64 = 1_000
    static let processExpiryMilliseconds: Int64 = 5_000

    init(store: any ChatStore, rooms: SocketIORooms, blocks: BlockList, graceMilliseconds: Int64 = 5_000, signals: ClusterSignals? = nil) {
        self.store = store
        self.rooms = rooms
        self.blocks = blocks
        self.graceMilliseconds = graceMilliseconds
        self.signals = signals
        guard let signals else { return }
        signals.on("o") { [self] process, arguments in
            guard let user = arguments.first.flatMap(Validation.uuid) else { return }
            let cameOnline = state.withLock { state in
                let was = state.isOnline(user)
                state.elsewhere[process, default: (0, [])].users.insert(user)
                state.elsewhere[process]?.heardAt = MonotonicClock.milliseconds()
                return !was
            }
            if cameOnline { announce(user, online: true, lastSeen: nil) }
        }
        signals.on("f") { [self] process, arguments in
            guard let user = arguments.first.flatMap(Validation.uuid) else { return }
            let wentOffline = state.withLock { state in
                guard state.elsewhere[process]?.users.remove(user) != nil else { return false }
                return !state.isOnline(user)
            }
            if wentOffline { announce(user, online: false, lastSeen: arguments.dropFirst().first.map(String.init)) }
        }
        signals.on("h") { [self] process, _ in
            let unknown = state.withLock { state in
                defer { state.elsewhere[process, default: (0, [])].heardAt = MonotonicClock.milliseconds() }
                return state.elsewhere[process] == nil
            }
            // A process started (or came back) without our hearing its list: ask it (it alone
            // answers, so N processes starting do not make N² lists).
            if unknown { signals.send("?", process) }
        }
        signals.on("?") { [self] _, arguments in
            if arguments.isEmpty || arguments.first == Substring(signals.processID) { sendList() }
        }
        signals.on("R") { [self] process, _ in state.withLock { $0.incoming[process] = [] } }
        signals.on("O") { [self] process, arguments in
            state.withLock { $0.incoming[process]?.formUnion(arguments.compactMap(Validation.uuid)) }
        }
        signals.on("E") { [self] process, _ in
            let (online, offline) = state.withLock { state -> ([String], [String]) in
                guard let listed = state.incoming.removeValue(forKey: process) else { return ([], []) }
                let before = state.elsewhere[process]?.users ?? []
                let online = listed.subtracting(before).filter { !state.isHere($0) && !state.isElsewhere($0, except: process) }
                state.elsewhere[process] = (MonotonicClock.milliseconds(), listed)
                let offline = before.subtracting(listed).filter { !state.isOnline($0) }
                return (Array(online), Array(offline))
            }
            for user in online { announce(user, online: true, lastSeen: nil) }
            let time = WallClock.iso8601()
            for user in offline { announce(user, online: false, lastSeen: time) }
        }
        signals.onListening { [self] listening in
            state.withLock { $0.noExpiryBefore = listening ? MonotonicClock.milliseconds() + Self.processExpiryMilliseconds : .max }
            guard listening else { return }
            // While we could not hear, we could not be heard either: others may have taken us
            // for dead. Both sides' lists again.
            sendList()
            signals.send("?")
        }
        signals.onTick { [self] in
            signals.send("h")
            expireSilentProcesses()
        }
    }

    /// Who is online here, to every other process: `R`, then `O` with as many users as fit in
    /// a notification, then `E`.
    private func sendList() {
        guard let signals else { return }
        // Queued under the lock, like `o` and `f`: they reach the others in the order the
        // state changed, so a list never overtakes (and undoes) a later change.
        state.withLock { state in
            signals.send("R")
            var chunk: [String] = [], bytes = 0
            for user in Array(state.sockets.keys) + Array(state.leaving.keys) {
                if bytes + user.utf8.count + 1 > ClusterSignals.maxArgumentBytes {
                    signals.send("O", arguments: chunk)
                    chunk.removeAll(keepingCapacity: true)
                    bytes = 0
                }
                chunk.append(user)
                bytes += user.utf8.count + 1
            }
            if !chunk.isEmpty { signals.send("O", arguments: chunk) }
            signals.send("E")
        }
    }

    /// Processes not heard from for `processExpiryMilliseconds` are taken for dead: their users
    /// go offline, now, unless online elsewhere (and their last_seen is stored here: the dead
    /// process could not).
    private func expireSilentProcesses() {
        let now = MonotonicClock.milliseconds()
        let offline: [String] = state.withLock { state in
            guard now >= state.noExpiryBefore else { return [] }
            let dead = state.elsewhere.filter { now - $0.value.heardAt > Self.processExpiryMilliseconds }
            guard !dead.isEmpty else { return [] }
            for process in dead.keys { state.elsewhere.removeValue(forKey: process) }
            return Set(dead.values.flatMap(\.users)).filter { !state.isOnline($0) }
        }
        guard !offline.isEmpty else { return }
        let time = WallClock.iso8601()
        for user in offline { announce(user, online: false, lastSeen: time) }
        store.recordLastSeen(offline.map { (userID: $0, time: time) }) { result in
            if case .failure(let error) = result { logger.warning("last_seen of \(offline.count) users of a silent process not stored: \(error)") }
        }
    }

    /// Counts the socket in; says `online` to the user's contacts unless they were still
    /// counted as online (another socket, or a reconnect within the grace period).
    func attach(_ socket: SocketIOSocket, userID: String) {
        let cameOnline = state.withLock { state in
            state.sockets[userID, default: 0] += 1
            let returning = state.leaving.removeValue(forKey: userID) != nil
            let cameHere = state.sockets[userID] == 1 && !returning
            if cameHere { signals?.send("o", userID) }
            return cameHere && !state.isElsewhere(userID)
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
            let time = WallClock.iso8601()
            let (goneHere, offline): (Bool, Bool) = state.withLock { state in
                guard state.leaving[userID] == token else { return (false, false) }
                state.leaving.removeValue(forKey: userID)
                signals?.send("f", userID, time)
                // Still online on another process: not last seen yet.
                guard !state.isElsewhere(userID) else { return (true, false) }
                state.unwritten[userID] = time
                return (true, true)
            }
            guard goneHere, offline else { return }
            announce(userID, online: false, lastSeen: time)
            scheduleWrite(on: loop)
        }
    }

    /// Online (on any process) and when last seen (nil: never, or unknown user), as `asker`
    /// may see it: between a blocker and the blocked, always offline and never seen.
    func presence(of userID: String, to asker: String,
                  completion: @escaping @Sendable (Result<(online: Bool, lastSeen: String?)?, StoreError>) -> Void) {
        let hidden = blocks.separates(userID, asker)
        let (online, unwritten) = state.withLock { state in (state.isOnline(userID), state.unwritten[userID]) }
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
                if case .failure(let error) = result { logger.warning("last_seen of \(times.count) users not stored: \(error)") }
            }
        }
    }

    /// At shutdown: everyone connected, leaving or not yet written is last seen now, written
    /// before the database goes (up to the time-out). True when written.
    func recordEveryoneSeen(timeoutMilliseconds: Int64) -> Bool {
        let time = WallClock.iso8601()
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
            if case .failure(let error) = result { logger.warning("last_seen of \(times.count) users not stored at shutdown: \(error)") }
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
}
