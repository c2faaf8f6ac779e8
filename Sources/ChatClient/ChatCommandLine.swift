import Foundation
import JSON

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
    private var pendingAcks = 0
    /// Sends not yet confirmed, oldest first: by their ack, or by `message_sent` from a server
    /// that does not ack (the Node original), whichever comes first.
    private var unconfirmed: [(number: Int, to: String, text: String)] = []
    private var sendNumber = 0
    private var refusals = 0
    private var closing = false
    private let acksDone = NSCondition()

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
        try connect()
        terminal.print(terminal.styled("\(me.displayName) (\(me.email ?? me.id)) chatting with \(peer.displayName) over \(options.transport.rawValue) — /help for commands", .dim))
        showHistory(20)
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

    private func connect() throws {
        let connection = SocketIOClient(queue: queue)
        connection.on("receive_message") { [weak self] arguments in self?.received(arguments.first) }
        connection.on("message_sent") { [weak self] arguments in
            guard let self, let payload = arguments.first, let to = payload["to"]?.stringValue, let text = payload["message"]?.stringValue else { return }
            self.state.lock()
            let number = self.unconfirmed.first(where: { $0.to == to && $0.text == text })?.number
            self.state.unlock()
            if let number { self.confirm(number, ok: true, id: payload["id"]?.stringValue, timestamp: payload["timestamp"]?.stringValue, error: nil) }
        }
        connection.onDisconnect = { [weak self] reason in self?.lost(connection, reason) }
        do {
            try connection.connect(address: api.address, transport: options.transport, auth: ["token": .string(token)])
        } catch {
            throw Failure(code: .unreachable, message: "real-time connection failed: \(error)")
        }
        state.lock(); self.connection = connection; state.unlock()
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
        let who = mine ? terminal.styled("you", .green) : terminal.styled(message.from == peer.id ? peer.displayName : String(message.from.prefix(8)), .cyan)
        terminal.print("\(terminal.styled("[\(time(message.timestamp))]", .dim)) \(who): \(message.text)\(mine ? " " + terminal.styled("✓", .green) : "")")
    }

    private func received(_ payload: JSONValue?) {
        guard let from = payload?["from"]?.stringValue, let text = payload?["message"]?.stringValue else { return }
        show(ChatMessageRecord(id: payload?["id"]?.stringValue, from: from, to: me.id, text: text, timestamp: payload?["timestamp"]?.stringValue))
    }

    private func showHistory(_ count: Int) {
        do {
            for message in try api.history(with: peer.id, token: token, count: count) { show(message) }
        } catch {
            terminal.print(terminal.styled("history unavailable: \(error)", .red))
        }
    }

    // MARK: - Sending

    private func send(_ text: String) {
        let to = peer.id
        state.lock()
        let connection = self.connection
        sendNumber += 1
        let number = sendNumber
        if connection != nil {
            pendingAcks += 1
            unconfirmed.append((number, to, text))
        }
        state.unlock()
        guard let connection else {
            return terminal.print(terminal.styled("✗ not sent (not connected; reconnecting): \(text)", .red))
        }
        connection.emit("send_message", [["to": .string(to), "message": .string(text)]]) { [weak self] answer in
            let reply = answer.first
            self?.confirm(number, ok: reply?["ok"]?.boolValue == true, id: reply?["id"]?.stringValue,
                          timestamp: reply?["timestamp"]?.stringValue, error: reply?["error"]?.stringValue ?? "refused")
        }
    }

    /// Settles send `number` once: shows it confirmed, or why it was refused.
    private func confirm(_ number: Int, ok: Bool, id: String?, timestamp: String?, error: String?) {
        state.lock()
        guard let index = unconfirmed.firstIndex(where: { $0.number == number }) else { state.unlock(); return }
        let sent = unconfirmed.remove(at: index)
        if !ok { refusals += 1 }
        state.unlock()
        if ok {
            let when = timestamp ?? Self.isoFormatter.string(from: Date())
            show(ChatMessageRecord(id: id, from: me.id, to: sent.to, text: sent.text, timestamp: when))
        } else {
            terminal.print(terminal.styled("✗ not sent (\(error ?? "refused")): \(sent.text)", .red))
        }
        acksDone.lock()
        state.lock(); pendingAcks -= 1; state.unlock()
        acksDone.broadcast()
        acksDone.unlock()
    }

    // MARK: - Losing the connection

    private func lost(_ connection: SocketIOClient, _ reason: String) {
        state.lock()
        guard self.connection === connection, !closing else { state.unlock(); return }
        self.connection = nil
        let unconfirmedCount = pendingAcks
        pendingAcks = 0
        refusals += unconfirmedCount
        unconfirmed.removeAll()
        state.unlock()
        acksDone.lock(); acksDone.broadcast(); acksDone.unlock()
        terminal.print(terminal.styled("connection lost (\(reason)); reconnecting…", .yellow))
        if unconfirmedCount > 0 { terminal.print(terminal.styled("✗ \(unconfirmedCount) message(s) not confirmed", .red)) }
        Thread.detachNewThread { [self] in reconnect() }
    }

    private func reconnect() {
        var delay = 0.5
        while true {
            state.lock(); let stop = closing; state.unlock()
            if stop { return }
            Thread.sleep(forTimeInterval: delay)
            do {
                try connect()
                terminal.print(terminal.styled("reconnected", .green))
                showHistory(100)  // what arrived meanwhile; seen ids are not shown twice
                return
            } catch {
                delay = min(delay * 2, 10)
            }
        }
    }

    // MARK: - The two ways to chat

    private func chatInteractively() -> Int32 {
        terminal.enterRawMode()
        defer { terminal.restore() }
        terminal.setPrompt(terminal.styled("\(me.displayName) → \(peer.displayName)> ", .bold))
        while let line = terminal.readLine() {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text.hasPrefix("/") {
                if !command(text) { break }
            } else {
                send(line)
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
            terminal.print("/to EMAIL|ID   talk to someone else\n/history [N]   the last N messages (20)\n/who           who you are and who you talk to\n/quit          leave (also Ctrl-C, Ctrl-D)")
        case "/who":
            terminal.print("you: \(me.displayName) \(me.email ?? "") \(me.id)\npeer: \(peer.displayName) \(peer.email ?? "") \(peer.id)")
        case "/history":
            let count = words.count > 1 ? min(max(Int(words[1]) ?? 20, 1), 100) : 20
            state.lock(); seen.removeAll(); state.unlock()
            showHistory(count)
        case "/to":
            guard words.count > 1 else { terminal.print("usage: /to EMAIL|ID"); return true }
            do {
                peer = try resolvePeer(words[1], waitForDemoPeer: false)
                terminal.setPrompt(terminal.styled("\(me.displayName) → \(peer.displayName)> ", .bold))
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
        let deadline = Date().addingTimeInterval(30)
        acksDone.lock()
        while true {
            state.lock(); let pending = pendingAcks; state.unlock()
            if pending == 0 || !acksDone.wait(until: deadline) { break }
        }
        acksDone.unlock()
        state.lock()
        let failed = refusals + pendingAcks
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
