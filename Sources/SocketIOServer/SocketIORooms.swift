import ServerRuntime
import Synchronization

/// Rooms across loops: a room's members may live on any loop; whoever broadcasts encodes the
/// packet once and hands it to each member's loop.
public final class SocketIORooms: Sendable {
    private let members = Locked<[String: [ObjectIdentifier: SocketIOSocket]]>([:])

    public init() {}

    func add(_ socket: SocketIOSocket, to room: String) {
        members.withLock { $0[room, default: [:]][ObjectIdentifier(socket)] = socket }
    }

    func remove(_ socket: SocketIOSocket, from room: String) {
        members.withLock { rooms in
            rooms[room]?.removeValue(forKey: ObjectIdentifier(socket))
            if rooms[room]?.isEmpty == true { rooms.removeValue(forKey: room) }
        }
    }

    /// The sockets in each of `rooms`, looked up under one lock (a batch of messages at once).
    public func members(of rooms: some Sequence<String>) -> [String: [SocketIOSocket]] {
        members.withLock { members in
            var found: [String: [SocketIOSocket]] = [:]
            for room in rooms where found[room] == nil {
                if let sockets = members[room] { found[room] = Array(sockets.values) }
            }
            return found
        }
    }
}
