import ChatCore
import CoreMetrics
import JSON
import ServerRuntime
import SocketIO
import SocketIOServer
import Synchronization

/// The chat as a Socket.IO application (CONTRACT.md): CONNECT authenticated by JWT (the
/// `auth.token` of the CONNECT, or the handshake's `token` query parameter), one room per
/// user id, `send_message` written through the group-commit writer and, only after COMMIT,
/// `receive_message` to every socket of the receiver, `own_message` to the sender's other
/// sockets and `message_sent` (or the ack) to the sender. Refusals: an ack `{ok:false,error}`,
/// or without an ack a `message_error` event. Connection state recovery replays a user's
/// stream from PostgreSQL (`resume`); `sync` pages it on request.
struct ChatSocketApp: Sendable {
    /// Who asked for a message to be written, and how to answer them.
    struct Origin: Sendable {
        let socket: SocketIOSocket
        let ackID: Int?
        /// The event's `to` and `message` as sent, echoed in `message_error`.
        let payload: JSONValue?
        /// The sending socket's budget under back-pressure (none for a refusal's origin).
        var quota: SendQuota? = nil
    }

    /// How many more messages a socket may send before it pauses itself, since the writer last
    /// resumed it from back-pressure (nil: never paused, no limit). Confined to its loop.
    final class SendQuota: @unchecked Sendable {
        var remaining: Int?
    }

    typealias Writer = MessageWriter<Origin>

    /// Beyond this many missed events a session is not resumed (`recovered` false): the client
    /// pages with `sync` or history instead of taking an unbounded burst.
    static let maxReplayedEvents = MessageService.maxSyncLimit

    let accounts: AccountService
    let messages: MessageService
    let writer: Writer
    let rooms: SocketIORooms
    let sessions: RecoverySessionID
    let streamHead: StreamHead
    /// `CONNECTION_STATE_RECOVERY`: every socket recovers, not only those that ask.
    let recoveryForEverySocket: Bool
    let maxMessageBytes: Int
    let typing: TypingRelay
    let conversations: ConversationService
    let presence: PresenceTracker
    let rateLimiter: SocketRateLimiter
    let blocks: BlockList

    var namespace: SocketIONamespace {
        SocketIONamespace(name: "/", authorize: { authorize($0, handshake: $1, answer: $2) }, onConnect: { connected($0, auth: $1) },
                          recovery: SocketIORecovery(scope: recoveryForEverySocket ? .everySocket : .whenAsked,
                                                     newSession: { newSession(for: $0) },
                                                     resume: { resume($0, pid: $1, offset: $2, completion: $3) }),
                          admit: { userID in userID.flatMap { rateLimiter.admit(userID: $0) } })
    }

    func authorize(_ auth: JSONValue?, handshake: EngineIOHandshake, answer: @escaping @Sendable (SocketIOAuthorization) -> Void) {
        let token = Self.token(auth, handshake)
        guard !token.isEmpty else { return answer(.refused(message: "No token")) }
        accounts.authenticate(token: token) { result in
            switch result {
            case .success(let authenticated): answer(.accepted(userID: authenticated.userID))
            case .failure: answer(.refused(message: "Invalid token"))
            }
        }
    }

    /// As the Node server: `auth.token || query.token`.
    private static func token(_ auth: JSONValue?, _ handshake: EngineIOHandshake) -> String {
        let token = auth?["token"]?.stringValue ?? ""
        return token.isEmpty ? handshake.queryParameter("token") ?? "" : token
    }

    /// A socket let in while its token's generation could not be checked (the database away)
    /// is checked again every few seconds until it can be; a revoked token's socket then goes.
    private func recheck(_ socket: SocketIOSocket, token: String) {
        _ = socket.loop.schedule(after: Self.recheckMilliseconds) { [accounts] in
            guard socket.isConnected else { return }
            accounts.authenticate(token: token) { result in
                socket.loop.execute {
                    switch result {
                    case .success(let authenticated) where authenticated.verified: break
                    case .success: recheck(socket, token: token)
                    case .failure: Self.closeSession(socket, reason: "token revoked")
                    }
                }
            }
        }
    }

    static let recheckMilliseconds: Int64 = 2_000

    /// Ends every socket of `userID` on this process (their tokens were revoked): each gets
    /// `session_closed {reason}`, then the server's DISCONNECT.
    static func closeSessions(of userID: String, reason: String, rooms: SocketIORooms) {
        for (_, sockets) in rooms.members(of: [userID]) {
            for socket in sockets { socket.loop.execute { closeSession(socket, reason: reason) } }
        }
    }

    /// `session_closed {reason}` and the server's DISCONNECT: the client is told why before it
    /// goes (and, told by the server, does not reconnect by itself).
    static func closeSession(_ socket: SocketIOSocket, reason: String) {
        socket.emit("session_closed", [["reason": .string(reason)]])
        socket.disconnect(reason: reason)
    }

    func connected(_ socket: SocketIOSocket, auth: JSONValue) {
        guard let userID = socket.userID else { return }
        if !accounts.knowsGeneration(of: userID), let handshake = socket.handshake { recheck(socket, token: Self.token(auth, handshake)) }
        socket.join(userID)
        rateLimiter.attach(to: socket, userID: userID)
        let quota = SendQuota()
        socket.on("send_message") { arguments, _, ack in
            send(from: socket, userID: userID, payload: arguments.first, ackID: ack?.id, quota: quota)
        }
        socket.on("sync") { arguments, _, ack in
            sync(socket, userID: userID, request: arguments.first, ack: ack)
        }
        typing.attach(to: socket, userID: userID)
        presence.attach(socket, userID: userID)
        socket.on("mark_read") { arguments, _, ack in
            markRead(socket, userID: userID, request: arguments.first, ack: ack)
        }
    }

    // MARK: - Connection state recovery

    /// A session starting at what this process has delivered so far: the socket is in its
    /// room already, so every later message reaches it live, and a reconnect without an offset
    /// resumes from here. While that place is unknown (the database has not answered since
    /// start-up, nothing delivered yet) the session starts beyond every message: such a
    /// resume without an offset is refused rather than replaying what came before it.
    private func newSession(for socket: SocketIOSocket) -> String {
        sessions.make(userID: socket.userID ?? "", start: streamHead.value ?? Int64.max)
    }

    /// The session's missed events from the database, after the client's offset (or the
    /// session's start when it had no event yet); nil for a pid not made for this user, an
    /// offset that is no cursor of ours or lies ahead of the stream, more than
    /// `maxReplayedEvents` missed, or a database away. One bounded read per attempt.
    private func resume(_ socket: SocketIOSocket, pid: String, offset: String?, completion: @escaping @Sendable (SocketIORecovery.Missed?) -> Void) {
        let completion: @Sendable (SocketIORecovery.Missed?) -> Void = { missed in
            ResumeMetrics.count(replayedEvents: missed.map(\.packets.count))
            completion(missed)
        }
        guard let userID = socket.userID, let start = sessions.start(of: pid, userID: userID) else { return completion(nil) }
        let after = offset ?? StreamCursor.encode(start)
        guard let position = StreamCursor.decode(after) else { return completion(nil) }
        messages.sync(callerID: userID, after: after, limit: Self.maxReplayedEvents) { result in
            guard case .success(let page) = result, !page.more else { return completion(nil) }
            let packets = page.events.flatMap { event in
                Self.streamPackets(event, for: userID).map { Self.withOffset($0, seq: event.position) }
            }
            completion(SocketIORecovery.Missed(packets: packets, position: page.events.last?.position ?? position))
        }
    }

    /// `sync {after?, limit?}` with an ack: `{ok:true, events, next, more}` (`SyncResponse`).
    private func sync(_ socket: SocketIOSocket, userID: String, request: JSONValue?, ack: SocketIOSocket.Ack?) {
        guard let ack else {
            return socket.emit("sync_error", [["error": "sync answers through an acknowledgement: emit it with a callback"]])
        }
        let after: String?
        let limit: Int?
        switch (request?["after"], request?["limit"]) {
        case (nil, _), (.null?, _): after = nil
        case (.string(let text)?, _): after = text
        default: return ack([["ok": false, "error": "after must be a cursor this server gave"]])
        }
        switch request?["limit"] {
        case nil, .null?: limit = nil
        case .number(let number)? where number == number.rounded() && abs(number) < 1e9: limit = Int(number)
        default: return ack([["ok": false, "error": "limit must be a whole number"]])
        }
        messages.sync(callerID: userID, after: after, limit: limit) { result in
            let answer: JSONValue
            switch result {
            case .success(let page):
                var object = SyncResponse.json(page, for: userID)
                object["ok"] = true
                answer = .object(object)
            case .failure(let error):
                answer = ["ok": false, "error": .string(error.message)]
            }
            socket.loop.execute { ack([answer]) }
        }
    }

    // MARK: - Read receipts

    /// `mark_read {with, up_to}`: the answer (ack) `{ok:true, read_up_to, moved, unread,
    /// cursor?}` or `{ok:false, error}`; without an ack a refusal is dropped. The receipt is
    /// announced before the ack is sent.
    private func markRead(_ socket: SocketIOSocket, userID: String, request: JSONValue?, ack: SocketIOSocket.Ack?) {
        conversations.markRead(userID: userID, peer: request?["with"]?.stringValue, upTo: request?["up_to"]?.stringValue) { [rooms, streamHead] result in
            let answer: JSONValue
            switch result {
            case .success(let mark):
                if let position = mark.receiptSeq, let peer = request?["with"]?.stringValue.flatMap(Validation.uuid) {
                    Self.announceRead(reader: userID, peer: peer, readSeq: mark.readSeq, position: position, rooms: rooms, head: streamHead, except: socket)
                }
                var object = Self.readMarkJSON(mark)
                object["ok"] = true
                answer = .object(object)
            case .failure(let error):
                answer = ["ok": false, "error": .string(error.message)]
            }
            socket.loop.execute { ack?([answer]) }
        }
    }

    static func readMarkJSON(_ mark: ReadMark) -> JSONObject {
        var json = JSONObject([("read_up_to", .string(StreamCursor.encode(mark.readSeq))), ("moved", .bool(mark.moved)),
                               ("unread", .number(Double(mark.unread)))])
        if let position = mark.receiptSeq { json["cursor"] = .string(StreamCursor.encode(position)) }
        return json
    }

    /// `messages_read {reader, peer, up_to, cursor}` to the peer's sockets (their messages were
    /// read) and to the reader's other sockets (their unread count clears); a recovering socket
    /// gets the receipt's place as its offset. Runs in order with the writer's deliveries.
    static func announceRead(reader: String, peer: String, readSeq: Int64, position: Int64, rooms: SocketIORooms, head: StreamHead,
                             except origin: SocketIOSocket? = nil) {
        head.advance(to: position)
        let packet = messagesRead(reader: reader, peer: peer, readSeq: readSeq, position: position)
        var offsetForm: [UInt8]?
        for (_, sockets) in rooms.members(of: [reader, peer]) {
            for socket in sockets where socket !== origin && socket.namespace == "/" {
                if socket.recovers, offsetForm == nil { offsetForm = withOffset(packet, seq: position) }
                let form = socket.recovers ? offsetForm! : packet
                socket.loop.execute { socket.sendEncoded(form, position: position) }
            }
        }
    }

    // MARK: - Messages

    private func send(from socket: SocketIOSocket, userID: String, payload: JSONValue?, ackID: Int?, quota: SendQuota) {
        let origin = Origin(socket: socket, ackID: ackID, payload: payload, quota: quota)
        switch Validation.outgoingMessage(payload, maxBytes: maxMessageBytes) {
        case .failure(let failure):
            MessageRefusal.invalid.count()
            socket.sendEncoded(Self.refusal(failure.message, to: origin))
        case .success(let message):
            if let refusal = blockRefusal(from: userID, to: message.to) {
                return socket.sendEncoded(Self.refusal(refusal, to: origin))
            }
            var budgetSpent = false
            if let remaining = quota.remaining {
                budgetSpent = remaining <= 1
                quota.remaining = remaining - 1
            }
            switch writer.write(senderID: userID, receiverID: message.to, content: message.content, clientID: message.clientID, context: origin,
                                pauseSender: budgetSpent) {
            case .queued: break
            case .queuedPauseSender: socket.pauseInput()
            case .refusedPauseSender:
                MessageRefusal.overloaded.count()
                socket.sendEncoded(Self.refusal(Self.tryAgain, to: origin))
                socket.pauseInput()
            case .refused:
                MessageRefusal.shuttingDown.count()  // the writer takes nothing more: the process is stopping
                socket.sendEncoded(Self.refusal(Self.tryAgain, to: origin))
            }
        }
    }

    /// The writer's queue is low again: the senders it paused are read again, each on its
    /// loop (after the pause, which ran on that loop before), one task per loop, each with an
    /// equal share of the `room` as its budget before it pauses again. (Once the overload is
    /// over, few senders pause at a time, so the shares are large.) In a random order, as a
    /// sender's last message may find the room taken and pause it at once.
    static func resumeSenders(_ origins: [Origin], room: Int) {
        var tasks = LoopTasks<Origin>()
        var seen = Set<ObjectIdentifier>()
        for origin in origins.shuffled() where seen.insert(ObjectIdentifier(origin.socket)).inserted {
            tasks.add(origin, on: origin.socket.loop)
        }
        let budget = max(1, room / max(1, seen.count))
        tasks.run { origin in
            origin.quota?.remaining = budget
            origin.socket.resumeInput()
        }
    }

    static let tryAgain = "the message could not be stored; try again"

    /// Why a message between these two may not go, if it may not: the blocked sender is told
    /// nothing more than that it was not delivered; a blocker is told to unblock first.
    private func blockRefusal(from sender: String, to receiver: String) -> String? {
        guard blocks.isLoaded else {
            MessageRefusal.storeUnavailable.count()
            return Self.tryAgain
        }
        guard blocks.separates(sender, receiver) else { return nil }
        MessageRefusal.blocked.count()
        return blocks.isBlocked(sender, by: receiver) ? "the message could not be delivered" : "you have blocked this user: unblock them to send messages"
    }

    /// Hands out one committed batch (on the writer's thread): every packet is encoded here,
    /// once, and each event loop gets one task carrying all of its sockets' packets, so a
    /// socket's share of the batch leaves in one write. A socket that recovers gets each
    /// event with its offset appended; every event carries its sequence, so a socket resuming
    /// meanwhile takes it after the replay or not at all.
    static func deliver(_ outcomes: [Writer.Outcome], writtenAt: UInt64, rooms: SocketIORooms, head: StreamHead) {
        var users: Set<String> = []
        var lastSeq: Int64 = 0
        for outcome in outcomes {
            guard case .success(let stored) = outcome.result, !outcome.isRepeat else { continue }
            users.insert(stored.receiverID)
            users.insert(stored.senderID)
            lastSeq = max(lastSeq, stored.seq)
        }
        // Before the lookup: a socket that joins after it takes a session start at or beyond
        // this batch (see `newSession`).
        if lastSeq > 0 { head.advance(to: lastSeq) }
        let members = rooms.members(of: users)
        var tasks = LoopTasks<(socket: SocketIOSocket, packet: [UInt8], position: Int64?)>()
        func post(_ packet: [UInt8], to socket: SocketIOSocket, position: Int64? = nil) {
            tasks.add((socket, packet, position), on: socket.loop)
        }
        for outcome in outcomes {
            let origin = outcome.context
            switch outcome.result {
            case .success(let stored) where outcome.isRepeat:
                // The answer the first copy got; nothing new to deliver, and no offset: it
                // would move the client's place in its stream back.
                post(messageSent(stored, namespace: origin.socket.namespace), to: origin.socket)
                if let ackID = origin.ackID { post(accepted(stored, ackID: ackID, namespace: origin.socket.namespace, isRepeat: true), to: origin.socket) }
            case .success(let stored):
                var offsetForm: [UInt8]?
                func postEvent(_ packet: [UInt8], offsetForm: inout [UInt8]?, to socket: SocketIOSocket) {
                    guard socket.recovers else { return post(packet, to: socket, position: stored.seq) }
                    if offsetForm == nil { offsetForm = withOffset(packet, seq: stored.seq) }
                    post(offsetForm!, to: socket, position: stored.seq)
                }
                if let sockets = members[stored.receiverID] {
                    let packet = receiveMessage(stored)
                    for socket in sockets where socket.namespace == "/" { postEvent(packet, offsetForm: &offsetForm, to: socket) }
                }
                if stored.senderID != stored.receiverID, let sockets = members[stored.senderID], sockets.count > 1 {
                    let packet = ownMessage(stored)
                    var ownOffsetForm: [UInt8]?
                    for socket in sockets where socket !== origin.socket && socket.namespace == "/" {
                        postEvent(packet, offsetForm: &ownOffsetForm, to: socket)
                    }
                }
                var sentOffsetForm: [UInt8]?
                postEvent(messageSent(stored, namespace: origin.socket.namespace), offsetForm: &sentOffsetForm, to: origin.socket)
                if let ackID = origin.ackID { post(accepted(stored, ackID: ackID, namespace: origin.socket.namespace), to: origin.socket) }
            case .failure(let error):
                let reason: String
                switch error {
                case .unknownRecipient:
                    MessageRefusal.unknownReceiver.count()
                    reason = "no user with id \(outcome.receiverID)"
                case .unavailable:
                    MessageRefusal.storeUnavailable.count()
                    reason = tryAgain
                case .failed:
                    MessageRefusal.storeFailed.count()
                    reason = "the message could not be stored"
                }
                post(refusal(reason, to: origin), to: origin.socket)
            }
        }
        tasks.run({ $0.socket.sendEncoded($0.packet, position: $0.position) }, then: DeliveryMetrics.recorder(DeliveryMetrics.thisProcess, since: writtenAt))
    }

    /// Hands out what other processes wrote (a range the sequencer read), in place order, as
    /// this process's own writes are: `receive_message` to the receiver's sockets here,
    /// `own_message` to the sender's (the sending socket is on another process), and each
    /// receipt as the users' streams have it (what a resume replays: each side's watermark).
    static func deliverRemote(_ range: StreamRange, rooms: SocketIORooms, head: StreamHead) {
        // Before the lookup: a socket that joins after it takes a session start at or beyond
        // this range (see `deliver`).
        let readAt = MonotonicClock.nanoseconds()
        head.advance(to: range.through)
        var users: Set<String> = []
        for message in range.messages {
            users.insert(message.receiverID)
            users.insert(message.senderID)
        }
        for receipt in range.receipts { users.insert(receipt.userID) }
        let members = rooms.members(of: users)
        guard !members.isEmpty else { return }
        var tasks = LoopTasks<(socket: SocketIOSocket, packet: [UInt8], position: Int64?)>()
        func post(_ packet: [UInt8], position: Int64, to sockets: [SocketIOSocket]) {
            var offsetForm: [UInt8]?
            for socket in sockets where socket.namespace == "/" {
                if socket.recovers, offsetForm == nil { offsetForm = withOffset(packet, seq: position) }
                tasks.add((socket, socket.recovers ? offsetForm! : packet, position), on: socket.loop)
            }
        }
        var messages = range.messages[...], receipts = range.receipts[...]
        while let next = [messages.first?.seq, receipts.first?.state.position].compactMap({ $0 }).min() {
            if let message = messages.first, message.seq == next {
                messages = messages.dropFirst()
                if let sockets = members[message.receiverID] { post(receiveMessage(message), position: message.seq, to: sockets) }
                if message.senderID != message.receiverID, let sockets = members[message.senderID] {
                    post(ownMessage(message), position: message.seq, to: sockets)
                }
            } else if let receipt = receipts.first {
                receipts = receipts.dropFirst()
                guard let sockets = members[receipt.userID] else { continue }
                for packet in streamPackets(.receipt(receipt.state), for: receipt.userID) {
                    post(packet, position: receipt.state.position, to: sockets)
                }
            }
        }
        tasks.run({ $0.socket.sendEncoded($0.packet, position: $0.position) }, then: DeliveryMetrics.recorder(DeliveryMetrics.otherProcess, since: readAt))
    }
}

/// Work for sockets of several event loops, gathered on another thread and handed to each
/// loop in one task, in the order added (a batch's packets, paused senders to resume). Few
/// loops, so a list, not a dictionary.
struct LoopTasks<Item: Sendable> {
    private var perLoop: [(loop: EventLoop, items: [Item])] = []

    mutating func add(_ item: Item, on loop: EventLoop) {
        if let index = perLoop.firstIndex(where: { $0.loop === loop }) {
            perLoop[index].items.append(item)
        } else {
            perLoop.append((loop, [item]))
        }
    }

    /// Runs `body` for each item on its loop; then, if given, `finished` once, on the loop
    /// that finishes last.
    func run(_ body: @escaping @Sendable (Item) -> Void, then finished: (@Sendable () -> Void)? = nil) {
        guard let finished else {
            for (loop, items) in perLoop { loop.execute { for item in items { body(item) } } }
            return
        }
        guard !perLoop.isEmpty else { return finished() }
        let countdown = Countdown(remaining: perLoop.count)
        for (loop, items) in perLoop {
            loop.execute {
                for item in items { body(item) }
                if countdown.finishOne() { finished() }
            }
        }
    }
}

/// How many of a task's parts are still to run.
final class Countdown: Sendable {
    private let remaining: Atomic<Int>
    init(remaining: Int) { self.remaining = Atomic(remaining) }
    /// Whether this was the last.
    func finishOne() -> Bool { remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 }
}

/// `chat_delivery_seconds{origin}`: how long a batch's messages take to reach their receivers'
/// sockets — from the store's answer to its commit (this process's writes) or from the read of
/// the range another process committed (its notification lag is `chat_stream_undelivered_places`)
/// until the last socket's loop has queued them for its end-of-turn write. One record per
/// batch (per range with a receiver on this process).
enum DeliveryMetrics {
    static let thisProcess = CoreMetrics.Timer(label: "chat_delivery_seconds", dimensions: [("origin", "this_process")])
    static let otherProcess = CoreMetrics.Timer(label: "chat_delivery_seconds", dimensions: [("origin", "other_process")])

    /// Records the time from `start` to when it is called.
    static func recorder(_ timer: CoreMetrics.Timer, since start: UInt64) -> @Sendable () -> Void {
        { timer.recordNanoseconds(Int64(MonotonicClock.nanoseconds() &- start)) }
    }

    static func registerAll() { _ = (thisProcess, otherProcess) }
}

/// The highest message sequence this process has delivered (or the database's, read at
/// start-up): where a new recovery session starts. Only moves forward; nil until known.
final class StreamHead: Sendable {
    private let seq = Atomic<Int64>(-1)

    var value: Int64? {
        let value = seq.load(ordering: .acquiring)
        return value < 0 ? nil : value
    }

    func advance(to newValue: Int64) {
        var current = seq.load(ordering: .relaxed)
        while newValue > current {
            let (exchanged, original) = seq.compareExchange(expected: current, desired: newValue, ordering: .acquiringAndReleasing)
            if exchanged { return }
            current = original
        }
    }
}

