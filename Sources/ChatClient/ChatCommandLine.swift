import Foundation
import JSON
import ServerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// One of the two demo accounts a terminal client uses when no other is given.
public struct DemoAccount: Sendable {
    public let name: String
    public let email: String
    public let password: String
    public let peerEmail: String

    public static let a = DemoAccount(name: "Alice", email: "alice@demo.chat", password: "alice-demo-password", peerEmail: "bob@demo.chat")
    public static let b = DemoAccount(name: "Bob", email: "bob@demo.chat", password: "bob-demo-password", peerEmail: "alice@demo.chat")
}

/// The terminal chat client: options, login, peer, history, then chat; interactive on a
/// terminal, line by line from a pipe. Exit statuses are documented in `usage`.
public final class ChatCommandLine: @unchecked Sendable {
    public enum ExitCode: Int32, Sendable {
        case ok = 0, refused = 1, usage = 2, unreachable = 3, badCredentials = 4, peerNotFound = 5
    }

    struct Options {
        var server = "http://localhost:5001"
        var email: String
        var password: String
        var name: String?
        var peer: String
        var transport = EngineIOClient.Transport.websocket
    }

    private let demo: DemoAccount
    private let program: String
    private let terminal = Terminal()
    private let queue = DispatchQueue(label: "chat-client")
    private let state = NSLock()
    private var api: ChatAPI!
    private var options: Options!
    private var token = ""
    private var me: ChatUser!
    private var peer: ChatUser!
    private var connection: SocketIOClient?
    private var seen: Set<String> = []
    /// A line typed and not yet confirmed, with the client_id it is sent (and resent) under.
    struct Outgoing {
        let number: Int
        let clientID: String
        let to: String
        let text: String
    }
    /// Lines not yet confirmed, oldest first, whether sent or typed while disconnected:
    /// confirmed by their ack, or by `message_sent` from a server that does not ack (the
    /// Node original), whichever comes first; sent again after a reconnect under the same
    /// client_id, which the server stores once.
    private var outbox: [Outgoing] = []
    private var sendNumber = 0
    private var refusals = 0
    private var closing = false
    private let acksDone = NSCondition()
    /// The recovery session (the server's `pid`) and the place in the stream of the last
    /// event taken: a reconnect resumes from there, with nothing missed and nothing twice.
    private var pid: String?
    private var cursor: String?
    /// Whether the peer was told this user is typing, and when last (ms, monotonic).
    private var typingSentAt: Int64?
    /// The peer is typing (shown in the prompt).
    private var peerTyping = false
    /// This user's messages shown, by place in the stream, not yet known to be read by their
    /// receiver; a `messages_read` from the peer marks those up to its place `✓✓`.
    private var unreadByPeer: [(position: Int64, to: String, text: String)] = []
    /// Names of the people this user has conversations with, by id (from `/api/conversations`).
    private var names: [String: String] = [:]
    private var namesRequested: Set<String> = []
    /// The peer's newest message shown and not yet marked read, and whether a mark is due.
    private var readUpTo: String?
    private var markScheduled = false
    /// Repeat `typing: true` this often while the user types (the server lets one lapse after 6 s).
    private static let typingRepeatMilliseconds: Int64 = 3_000

    public init(demo: DemoAccount, program: String) {
        self.demo = demo
        self.program = program
    }

    var usage: String {
        """
        usage: \(program) [--server URL] [--email EMAIL] [--password PASSWORD] [--name NAME] [--to EMAIL|ID] [--transport websocket|polling]

        Logs in (registering the demo account \(demo.email) on first use), finds the peer
        (default \(demo.peerEmail)), shows the recent conversation, then chats: each line typed is
        sent. With input from a pipe, sends each line and exits once all are confirmed.
        Environment: CHAT_SERVER_URL, CHAT_EMAIL, CHAT_PASSWORD, CHAT_NAME, CHAT_TO, CHAT_TRANSPORT, NO_COLOR.
        Commands: /to EMAIL|ID  /history [N]  /who  /help  /quit
        Exit status: 0 ok, 1 a message was refused or not confirmed, 2 usage, 3 server unreachable,
        4 wrong email or password, 5 peer not found.
        """
    }

    public func run(_ arguments: [String]) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        switch parse(arguments) {
        case .failure(let message):
            printError("\(program): \(message)\n\(usage)\n")
            return ExitCode.usage.rawValue
        case .success(nil):
            Swift.print(usage)
            return ExitCode.ok.rawValue
        case .success(let parsed?):
            options = parsed
        }
        do {
            try start()
        } catch let failure as Failure {
            printError("\(program): \(failure.message)\n")
            return failure.code.rawValue
        } catch {
            printError("\(program): \(error)\n")
            return ExitCode.unreachable.rawValue
        }
        return terminal.interactive ? chatInteractively() : chatFromPipe()
    }

    struct Failure: Error {
        let code: ExitCode
        let message: String
    }

    private func parse(_ arguments: [String]) -> Result<Options?, ClientError> {
        let environment = ProcessInfo.processInfo.environment
        var options = Options(email: environment["CHAT_EMAIL"] ?? demo.email, password: environment["CHAT_PASSWORD"] ?? demo.password,
                              name: environment["CHAT_NAME"], peer: environment["CHAT_TO"] ?? demo.peerEmail)
        if let server = environment["CHAT_SERVER_URL"] { options.server = server }
        var transport = environment["CHAT_TRANSPORT"]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "-h" || argument == "--help" { return .success(nil) }
            guard ["--server", "--email", "--password", "--name", "--to", "--transport"].contains(argument) else {
                return .failure(ClientError("unknown option \(argument)"))
            }
            guard index + 1 < arguments.count else { return .failure(ClientError("\(argument) needs a value")) }
            let value = arguments[index + 1]
            switch argument {
            case "--server": options.server = value
            case "--email": options.email = value
            case "--password": options.password = value
            case "--name": options.name = value
            case "--to": options.peer = value
            default: transport = value
            }
            index += 2
        }
        if let transport {
            guard let chosen = EngineIOClient.Transport(rawValue: transport) else {
                return .failure(ClientError("--transport must be websocket or polling, not \(transport)"))
            }
            options.transport = chosen
        }
        return .success(options)
    }

    // MARK: - Start

    private func start() throws {
        let address: ServerAddress
        do { address = try ServerAddress(options.server) } catch { throw Failure(code: .usage, message: "\(error)") }
        api = ChatAPI(address: address)
        // Only the demo accounts register themselves; any other must exist.
        let registerAs = options.email == demo.email ? (options.name ?? demo.name) : nil
        do {
            let session = try api.login(email: options.email, password: options.password, registerAs: registerAs)
            token = session.token
            me = session.user ?? ChatUser(id: ChatAPI.userID(fromToken: session.token) ?? "?", email: options.email, username: options.name)
        } catch .invalidCredentials {
            throw Failure(code: .badCredentials, message: "wrong email or password for \(options.email)")
        } catch .cannotRegister(let why) {
            throw Failure(code: .badCredentials, message: "wrong email or password for \(options.email) (registering it as new failed too: \(why))")
        } catch .unreachable(let why) {
            throw Failure(code: .unreachable, message: "cannot reach the server at \(address): \(why)")
        } catch {
            throw Failure(code: .unreachable, message: "\(error)")
        }
        peer = try resolvePeer(options.peer, waitForDemoPeer: terminal.interactive && options.peer == demo.peerEmail)
        do {
            try connect()
        } catch {
            throw Failure(code: .unreachable, message: "real-time connection failed: \(error)")
        }
        // From a pipe only the sent lines' outcomes are written: no banner, no history.
        guard terminal.interactive else { return }
        terminal.print(terminal.styled("\(me.displayName) (\(me.email ?? me.id)) chatting with \(peer.displayName) over \(options.transport.rawValue) — /help for commands", .dim))
        showHistory(20)
    }

    /// Logs in again with the same credentials (the token expired, or the server no longer
    /// takes it). False when they no longer work.
    private func logInAgain() -> Bool {
        do {
            let session = try api.login(email: options.email, password: options.password)
            state.lock(); token = session.token; state.unlock()
            return true
        } catch .invalidCredentials {
            notice(terminal.styled("your email or password no longer works: restart the client to log in", .red))
            return false
        } catch {
            return false
        }
    }

    /// A REST call with the current token; once more with a fresh one if it was refused (403).
    private func withToken<T>(_ call: (String) throws(ChatAPI.Failure) -> T) throws(ChatAPI.Failure) -> T {
        state.lock(); let current = token; state.unlock()
        do {
            return try call(current)
        } catch .refused(403, let why) {
            guard logInAgain() else { throw .refused(403, why) }
            state.lock(); let fresh = token; state.unlock()
            return try call(fresh)
        }
    }

    /// The peer by email or id. The demo peer may not have registered yet: then wait for it.
    private func resolvePeer(_ text: String, waitForDemoPeer: Bool) throws -> ChatUser {
        if Self.isUUID(text) { return ChatUser(id: text.lowercased(), email: nil, username: nil) }
        var announced = false
        while true {
            do {
                return try api.user(email: text, token: token)
            } catch .notFound {
                guard waitForDemoPeer else { throw Failure(code: .peerNotFound, message: "no user with email \(text)") }
                if !announced {
                    terminal.print(terminal.styled("waiting for \(text) to join (run the other client)…", .yellow))
                    announced = true
                }
                Thread.sleep(forTimeInterval: 1)
            } catch .refused(404, _) {
                throw Failure(code: .peerNotFound, message: "this server cannot look users up by email; give the peer's id with --to")
            } catch {
                throw Failure(code: .unreachable, message: "\(error)")
            }
        }
    }

    /// Connects with connection state recovery: a reconnect names its session and the last
    /// event it took. True when the server resumed the session (it then sends what was
    /// missed, in order, before anything new).
    @discardableResult
    private func connect(announcing announcement: String? = nil) throws -> Bool {
        let connection = SocketIOClient(queue: queue)
        // Said before the events that follow the reply (a resume's missed messages).
        if let announcement { connection.onConnectReply = { [weak self] _ in self?.notice(announcement) } }
        connection.on("receive_message") { [weak self] arguments in self?.streamEvent(arguments, mine: false) }
        connection.on("own_message") { [weak self] arguments in self?.streamEvent(arguments, mine: true) }
        connection.on("message_sent") { [weak self] arguments in
            guard let self, let payload = arguments.first, let to = payload["to"]?.stringValue, let text = payload["message"]?.stringValue else { return }
            self.advanceCursor(arguments)
            self.state.lock()
            let number = self.outbox.first(where: { $0.to == to && $0.text == text })?.number
            self.state.unlock()
            if let number {
                self.confirm(number, ok: true, id: payload["id"]?.stringValue, timestamp: payload["timestamp"]?.stringValue,
                             cursor: payload["cursor"]?.stringValue, error: nil)
            }
        }
        connection.on("messages_read") { [weak self] arguments in
            self?.advanceCursor(arguments)
            self?.messagesRead(arguments.first)
        }
        connection.on("typing") { [weak self] arguments in
            guard let self, let from = arguments.first?["from"]?.stringValue, let typing = arguments.first?["typing"]?.boolValue else { return }
            self.peerTyping(from: from, typing)
        }
        // The server says why before it disconnects this client (logged out elsewhere, a
        // password change, too many events): shown, then the reconnect logs in again if it can.
        connection.on("session_closed") { [weak self] arguments in
            guard let self, let reason = arguments.first?["reason"]?.stringValue else { return }
            self.notice(self.terminal.styled("the server ended this session: \(reason)", .yellow))
        }
        connection.onDisconnect = { [weak self] reason in self?.lost(connection, reason) }
        state.lock()
        var auth = JSONObject([("token", .string(token)), ("recover", true)])
        let previous = pid
        if let pid {
            auth["pid"] = .string(pid)
            if let cursor { auth["offset"] = .string(cursor) }
        }
        state.unlock()
        let reply = try connection.connect(address: api.address, transport: options.transport, auth: .object(auth))
        let newPID = reply?["pid"]?.stringValue
        state.lock()
        // A connection that ended before it became the current one had its end ignored by
        // `lost`: it is no connection (checked under the lock `lost` takes).
        guard !connection.isClosed else {
            state.unlock()
            throw ClientError("the connection ended as it was made")
        }
        self.connection = connection
        pid = newPID
        state.unlock()
        return previous != nil && newPID == previous
    }

    /// The offset a recovering connection's events end with (or, from a connection without
    /// it, the cursor in the payload).
    private func advanceCursor(_ arguments: [JSONValue]) {
        let offset = arguments.count > 1 ? arguments.last?.stringValue : arguments.first?["cursor"]?.stringValue
        guard let offset else { return }
        state.lock(); cursor = offset; state.unlock()
    }

    // MARK: - Showing messages

    private func time(_ timestamp: String?) -> String {
        guard let timestamp, let date = Self.isoFormatter.date(from: timestamp) else { return "--:--" }
        return Self.localFormatter.string(from: date)
    }

    nonisolated(unsafe) private static let isoFormatter: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }()

    private static let localFormatter: DateFormatter = {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm"
        return formatter
    }()

    private func show(_ message: ChatMessageRecord) {
        if let id = message.id {
            state.lock()
            let fresh = seen.insert(id).inserted
            state.unlock()
            guard fresh else { return }
        }
        let mine = message.from == me.id
        let who = mine ? terminal.styled("you", .green) : terminal.styled(name(of: message.from), .cyan)
        terminal.print("\(terminal.styled("[\(time(message.timestamp))]", .dim)) \(who): \(message.text)\(mine ? " " + terminal.styled("✓", .green) : "")")
        guard terminal.interactive else { return }
        if mine, let position = ChatAPI.position(ofCursor: message.cursor), let to = message.to {
            state.lock(); unreadByPeer.append((position, to, message.text)); state.unlock()
        } else if !mine, message.from == peer.id, let upTo = message.id ?? message.cursor {
            markRead(upTo: upTo)
        }
    }

    /// A user's name: the peer's, or one from the conversation list (asked for again, once,
    /// for someone not in it yet: a message from them made a conversation); else the start
    /// of the id.
    private func name(of userID: String) -> String {
        state.lock()
        var known = userID == peer.id ? peer.displayName : names[userID]
        let ask = known == nil && namesRequested.insert(userID).inserted
        state.unlock()
        if ask {
            loadNames()
            state.lock(); known = names[userID]; state.unlock()
        }
        return known ?? String(userID.prefix(8))
    }

    private func loadNames() {
        guard let list = try? withToken({ token throws(ChatAPI.Failure) in try api.conversations(token: token, limit: 100) }) else { return }
        state.lock()
        for entry in list { names[entry.peer.id] = entry.peer.displayName }
        state.unlock()
    }

    // MARK: - Read marks

    /// The peer's messages shown here are read: told to the server (which tells the peer and
    /// this user's other devices), at most one mark per 300 ms for a run of messages.
    private func markRead(upTo: String) {
        state.lock()
        readUpTo = upTo
        let schedule = !markScheduled
        markScheduled = true
        state.unlock()
        guard schedule else { return }
        queue.asyncAfter(deadline: .now() + 0.3) { [weak self] in
            guard let self else { return }
            self.state.lock()
            let upTo = self.readUpTo
            let connection = self.connection
            let peer = self.peer.id
            self.readUpTo = nil
            self.markScheduled = false
            self.state.unlock()
            guard let upTo else { return }
            connection?.emit("mark_read", [["with": .string(peer), "up_to": .string(upTo)]])
        }
    }

    /// `messages_read {reader, peer, up_to}` (or a `read` event of the stream): when the reader
    /// is who this user wrote to, their messages up to `up_to` get `✓✓` (the newest is named).
    private func messagesRead(_ payload: JSONValue?) {
        guard let reader = payload?["reader"]?.stringValue, let peer = payload?["peer"]?.stringValue else { return }
        messagesRead(ReadReceiptRecord(reader: reader, peer: peer, upTo: payload?["up_to"]?.stringValue ?? ""))
    }

    private func messagesRead(_ receipt: ReadReceiptRecord) {
        let reader = receipt.reader
        guard receipt.peer == me.id, let upTo = ChatAPI.position(ofCursor: receipt.upTo) else { return }
        state.lock()
        let read = unreadByPeer.filter { $0.to == reader && $0.position <= upTo }
        unreadByPeer.removeAll { $0.to == reader && $0.position <= upTo }
        let name = reader == peer.id ? peer.displayName : String(reader.prefix(8))
        state.unlock()
        guard let newest = read.last else { return }
        terminal.print(terminal.styled("✓✓ \(name) read \(read.count == 1 ? "" : "\(read.count) messages, up to ")“\(Self.shortened(newest.text, to: 40))”", .green))
    }

    /// `/list`: the conversations, the newest first, with their unread counts.
    private func listConversations() {
        do {
            let list = try withToken { token throws(ChatAPI.Failure) in try api.conversations(token: token) }
            if list.isEmpty { return terminal.print(terminal.styled("no conversations yet", .dim)) }
            for entry in list {
                let current = entry.peer.id == peer.id ? "*" : " "
                let last = entry.lastMessage.map { "\($0.from == me.id ? "you: " : "")\(Self.shortened($0.text, to: 40))" } ?? ""
                let unread = entry.unread > 0 ? terminal.styled(" (\(entry.unread >= 999 ? "999+" : String(entry.unread)) unread)", .yellow) : ""
                terminal.print("\(current) \(entry.peer.displayName) \(terminal.styled(entry.peer.email ?? "", .dim)) — \(last)\(unread)")
            }
        } catch {
            terminal.print(terminal.styled("conversations unavailable: \(error)", .red))
        }
    }

    /// `receive_message`, or `own_message` (what this user sent from another device).
    private func streamEvent(_ arguments: [JSONValue], mine: Bool) {
        advanceCursor(arguments)
        if !mine, let from = arguments.first?["from"]?.stringValue { peerTyping(from: from, false) }  // they sent it: done typing
        // A pipe shows only its own lines' outcomes.
        guard terminal.interactive, let payload = arguments.first, let text = payload["message"]?.stringValue else { return }
        let from = mine ? me.id : payload["from"]?.stringValue ?? ""
        show(ChatMessageRecord(id: payload["id"]?.stringValue, from: from, to: mine ? payload["to"]?.stringValue : me.id, text: text,
                               timestamp: payload["timestamp"]?.stringValue, cursor: payload["cursor"]?.stringValue))
    }

    private func showHistory(_ count: Int) {
        let peerID = peer.id
        do {
            for message in try withToken({ token throws(ChatAPI.Failure) in try api.history(with: peerID, token: token, count: count) }) { show(message) }
        } catch {
            terminal.print(terminal.styled("history unavailable: \(error)", .red))
        }
    }

    /// After a reconnect the server could not resume (too much missed, or a server without
    /// recovery): pages the stream from the last event taken and shows this conversation's
    /// messages; the others are counted. Without a place in the stream, the recent history.
    private func catchUp() {
        state.lock(); let start = cursor; state.unlock()
        guard let start else { return interactiveHistory() }
        var after = start
        var elsewhere = 0
        do {
            while true {
                let page = try withToken { token throws(ChatAPI.Failure) in try api.sync(after: after, token: token) }
                for message in page.messages {
                    let here = message.from == peer.id || message.to == peer.id
                    if here, terminal.interactive { show(message) } else if !here { elsewhere += 1 }
                }
                for receipt in page.receipts { messagesRead(receipt) }
                after = page.next
                state.lock(); cursor = page.next; state.unlock()
                if !page.more { break }
            }
        } catch .notFound {
            return interactiveHistory()  // a server without the sync API (the Node original)
        } catch {
            notice(terminal.styled("could not catch up: \(error)", .red))
        }
        if elsewhere > 0 { notice(terminal.styled("\(elsewhere) message(s) in other conversations meanwhile", .dim)) }
    }

    private func interactiveHistory() {
        if terminal.interactive { showHistory(100) }  // seen ids are not shown twice
    }

    // MARK: - Sending

    // MARK: - Typing

    private func showPrompt() {
        state.lock()
        let text = "\(me.displayName) → \(peer.displayName)\(peerTyping ? " (typing…)" : "")> "
        state.unlock()
        terminal.setPrompt(terminal.styled(text, .bold))
    }

    private func peerTyping(from: String, _ typing: Bool) {
        state.lock()
        let changed = from == peer.id && peerTyping != typing
        if changed { peerTyping = typing }
        state.unlock()
        if changed { showPrompt() }
    }

    /// The line being written changed: the peer learns that this user is typing (repeated
    /// while they go on), or no longer is (the line emptied, or a command).
    private func edited(_ text: String) {
        let writing = !text.allSatisfy(\.isWhitespace) && !text.hasPrefix("/")
        state.lock()
        let last = typingSentAt
        state.unlock()
        if writing {
            if let last, MonotonicClock.milliseconds() - last < Self.typingRepeatMilliseconds { return }
            tellTyping(true)
        } else if last != nil {
            tellTyping(false)
        }
    }

    private func tellTyping(_ typing: Bool) {
        state.lock()
        let connection = self.connection
        let to = peer.id
        let wasTyping = typingSentAt != nil
        typingSentAt = typing ? MonotonicClock.milliseconds() : nil
        state.unlock()
        guard typing || wasTyping else { return }
        // No ack: refusals (someone not written to yet) are dropped by the server.
        connection?.emit("typing", [["to": .string(to), "typing": .bool(typing)]])
    }

    /// Takes a line into the outbox and sends it if connected; else it waits for the reconnect.
    private func send(_ text: String) {
        state.lock()
        sendNumber += 1
        let outgoing = Outgoing(number: sendNumber, clientID: UUID().uuidString.lowercased(), to: peer.id, text: text)
        outbox.append(outgoing)
        let connection = self.connection
        state.unlock()
        guard let connection else {
            return notice(terminal.styled("… pending (not connected): \(Self.shortened(text))", .yellow))
        }
        transmit(outgoing, over: connection)
    }

    private func transmit(_ outgoing: Outgoing, over connection: SocketIOClient) {
        let payload: JSONValue = ["to": .string(outgoing.to), "message": .string(outgoing.text), "client_id": .string(outgoing.clientID)]
        connection.emit("send_message", [payload]) { [weak self] answer in
            let reply = answer.first
            self?.confirm(outgoing.number, ok: reply?["ok"]?.boolValue == true, id: reply?["id"]?.stringValue,
                          timestamp: reply?["timestamp"]?.stringValue, cursor: reply?["cursor"]?.stringValue,
                          error: reply?["error"]?.stringValue ?? "refused")
        }
    }

    /// After a reconnect: everything not yet confirmed, in order, under its first client_id.
    private func flushOutbox() {
        state.lock()
        let waiting = outbox
        let connection = self.connection
        state.unlock()
        guard let connection else { return }
        for outgoing in waiting { transmit(outgoing, over: connection) }
    }

    /// Settles send `number` once: shows it confirmed, or why it was refused.
    private func confirm(_ number: Int, ok: Bool, id: String?, timestamp: String?, cursor: String?, error: String?) {
        // Taken out of the outbox at once (an ack and a message_sent may both come), but the
        // pipe's wait for an empty outbox ends only after the outcome is written.
        acksDone.lock()
        defer {
            acksDone.broadcast()
            acksDone.unlock()
        }
        state.lock()
        guard let index = outbox.firstIndex(where: { $0.number == number }) else { return state.unlock() }
        let sent = outbox.remove(at: index)
        if !ok { refusals += 1 }
        state.unlock()
        if ok {
            let when = timestamp ?? Self.isoFormatter.string(from: Date())
            show(ChatMessageRecord(id: id, from: me.id, to: sent.to, text: sent.text, timestamp: when, cursor: cursor))
        } else {
            terminal.print(terminal.styled("✗ not sent (\(error ?? "refused")): \(Self.shortened(sent.text))", .red))
        }
    }

    /// A refused line as echoed: its start, not all of it.
    static func shortened(_ text: String, to length: Int = 60) -> String {
        guard text.count > length else { return text }
        return String(text.prefix(length)) + "… (\(text.utf8.count) bytes)"
    }

    // MARK: - Losing the connection

    private func lost(_ connection: SocketIOClient, _ reason: String) {
        state.lock()
        guard self.connection === connection, !closing else { state.unlock(); return }
        self.connection = nil
        let waiting = outbox.count
        state.unlock()
        notice(terminal.styled("connection lost (\(reason)); reconnecting…", .yellow))
        if waiting > 0 { notice(terminal.styled("… \(waiting) message(s) pending: sent once reconnected", .yellow)) }
        Thread.detachNewThread { [self] in reconnect() }
    }

    /// Until connected again (or closing): a refused token means logging in again, at once.
    private func reconnect() {
        var delay = 0.5
        while true {
            state.lock(); let stop = closing; state.unlock()
            if stop { return }
            Thread.sleep(forTimeInterval: delay)
            do {
                let recovered = try connect(announcing: terminal.styled("reconnected", .green))
                if !recovered { catchUp() }
                flushOutbox()
                return
            } catch let error as ClientError where ["Invalid token", "No token"].contains(error.description) {
                guard logInAgain() else { return }
                delay = 0
            } catch {
                delay = min(max(delay, 0.25) * 2, 10)
            }
        }
    }

    /// What the client says about itself: above the prompt, or on stderr from a pipe (whose
    /// stdout carries only the lines' outcomes).
    private func notice(_ text: String) {
        if terminal.interactive { terminal.print(text) } else { printError(text + "\n") }
    }

    // MARK: - The two ways to chat

    private func chatInteractively() -> Int32 {
        terminal.enterRawMode()
        defer { terminal.restore() }
        showPrompt()
        terminal.onEdit = { [weak self] text in self?.edited(text) }
        while let line = terminal.readLine() {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text.hasPrefix("/") {
                if !command(text) { break }
            } else {
                send(line)  // the editor reported the line emptied: typing false went first
            }
        }
        shutdown()
        return ExitCode.ok.rawValue
    }

    /// Handles a /command; false to quit.
    private func command(_ text: String) -> Bool {
        let words = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        switch words[0] {
        case "/quit", "/exit":
            return false
        case "/help":
            terminal.print("/to EMAIL|ID   talk to someone else\n/list          your conversations, with unread counts\n/history [N]   the last N messages (20)\n/who           who you are and who you talk to\n/quit          leave (also Ctrl-C, Ctrl-D)")
        case "/list":
            listConversations()
        case "/who":
            let peerID = peer.id
            var seen = ""
            if let presence = try? withToken({ token throws(ChatAPI.Failure) in try api.presence(of: peerID, token: token) }) {
                seen = presence.online ? " — online" : presence.lastSeen.map { " — last seen \(time($0))" } ?? " — offline"
            }
            terminal.print("you: \(me.displayName) \(me.email ?? "") \(me.id)\npeer: \(peer.displayName) \(peer.email ?? "") \(peer.id)\(seen)")
        case "/history":
            let count = words.count > 1 ? min(max(Int(words[1]) ?? 20, 1), 100) : 20
            state.lock(); seen.removeAll(); state.unlock()
            showHistory(count)
        case "/to":
            guard words.count > 1 else { terminal.print("usage: /to EMAIL|ID"); return true }
            do {
                let next = try resolvePeer(words[1], waitForDemoPeer: false)
                tellTyping(false)
                state.lock(); peer = next; peerTyping = false; state.unlock()
                showPrompt()
                terminal.print(terminal.styled("now chatting with \(peer.displayName)", .dim))
                state.lock(); seen.removeAll(); state.unlock()
                showHistory(20)
            } catch let failure as Failure {
                terminal.print(terminal.styled(failure.message, .red))
            } catch {
                terminal.print(terminal.styled("\(error)", .red))
            }
        default:
            terminal.print("unknown command \(words[0]); /help lists them")
        }
        return true
    }

    /// From a pipe: send every line, wait until each is confirmed, report.
    private func chatFromPipe() -> Int32 {
        while let line = terminal.readLine() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            send(line)
        }
        // Pending lines wait out a reconnect; 30 s at most for all.
        let deadline = Date().addingTimeInterval(30)
        acksDone.lock()
        while true {
            state.lock(); let pending = outbox.count; state.unlock()
            if pending == 0 || !acksDone.wait(until: deadline) { break }
        }
        acksDone.unlock()
        state.lock()
        let failed = refusals + outbox.count
        state.unlock()
        shutdown()
        if failed > 0 {
            printError("\(program): \(failed) message(s) refused or not confirmed\n")
            return ExitCode.refused.rawValue
        }
        return ExitCode.ok.rawValue
    }

    private func shutdown() {
        state.lock()
        closing = true
        let connection = self.connection
        state.unlock()
        connection?.close()
    }

    // MARK: - Helpers

    private func printError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    static func isUUID(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        return parts.map(\.count) == [8, 4, 4, 4, 12] && text.allSatisfy { $0 == "-" || $0.isHexDigit }
    }

}
