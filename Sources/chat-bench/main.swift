import CLinux
import ChatClient
import Foundation
import JWT
import ServerRuntime

// chat-bench: users in pairs chat 1:1 over Socket.IO/WebSocket against a running server and
// the figures come out: persisted messages/s (each counted at its `message_sent`, which both
// this server and the Node original emit after the INSERT), ack and end-to-end latency
// percentiles, server CPU and RSS, KB per idle connection, and what the bench itself cost.
// Bounded: every phase has a duration and stops by itself. Loopback servers only.
//
// Its options: `usage` below.

let usage = """
    usage: chat-bench [options]

      --server URL --pid PID      the server, and its process for CPU and RSS figures
      --servers URL,URL…          the load's connections spread over these (several processes of one
                                  database): user i on the (i mod n)th, so each pair's two users are on
                                  different ones when n is even; users are made on --server
      --users N                   users in pairs (default 200); --users-file F keeps their tokens
      --window W | --rate R       closed loop, W in flight per sender (default 8) | open loop, R msg/s
      --seconds S --warmup S      measured time after a warm-up
      --then-rate R --then-seconds S   an open-loop phase after the measured one (recovery)
      --timeline                  one line per second
      --logins N                  N threads logging in non-stop during the run
      --guessers N --guess-accounts one|many   a password-guessing storm beside it: N threads
                                  posting wrong passwords, each from its own 127.0.0.x (GuessStorm.swift)
      --idle N                    first hold N idle connections and report KiB per connection
      --typing-rate R             besides the messages, R typing events/s in all, round-robin (a typing storm)
      --read-receipts MS          every user marks read what arrived, at most once per MS ms on a clock
                                  of its own (as a client showing the conversation does): receipts maintained
      --conversations-probe N --probe-user ID --jwt-secret S   instead of the load: N pages of
                                  GET /api/conversations (20 each, walking on with `next`) as that user
      --recover                   every connection asks for connection state recovery (offsets on events)
      --costs                     instead of the load: what a log line and a metrics update cost here
      --storm N --storm-users F --jwt-secret S   the reconnect storm instead of the load: N receivers
                                  (user ids in F, tokens signed with S) recover at once while
                                  messages flow to them at --rate (ReconnectStorm.swift)

    Bounded and loopback only; the README's Performance section shows the phases make bench runs.
    """

struct Options {
    var server = "http://127.0.0.1:5001"
    var servers: [String] = []
    var users = 200
    var window = 8
    var rate = 0  // messages/s in all; 0 = closed loop with `window` in flight per sender
    var seconds = 10.0
    var warmup = 2.0
    var idle = 0
    var pid: Int32?
    var password = "bench-password"
    var usersFile: String?
    var thenRate = 0
    var thenSeconds = 0.0
    var timeline = false
    var logins = 0
    var recover = false
    var typingRate = 0
    var readReceiptsMilliseconds = 0
    var conversationsProbe = 0
    var probeUser: String?
    var storm = 0
    var stormUsers: String?
    var jwtSecret: String?
    var guessers = 0
    var guessOneAccount = true
}

/// A bad command line: the reason, exit status 2 (not a crash).
func optionError(_ message: String) -> Never {
    FileHandle.standardError.write(Data("chat-bench: \(message) (chat-bench --help lists the options)\n".utf8))
    exit(2)
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = Array(CommandLine.arguments.dropFirst())
    func number<N: LosslessStringConvertible>(_ value: String, for name: String) -> N {
        guard let number = N(value) else { optionError("\(name) takes a number, not '\(value)'") }
        return number
    }
    while !arguments.isEmpty {
        let name = arguments.removeFirst()
        switch name {
        case "--help", "-h":
            print(usage)
            exit(0)
        case "--timeline":
            options.timeline = true
            continue
        case "--costs":
            ObservabilityCosts.run()
            exit(0)
        case "--recover":
            options.recover = true
            continue
        default: break
        }
        guard let value = arguments.first else { optionError("\(name) needs a value") }
        arguments.removeFirst()
        switch name {
        case "--server": options.server = value
        case "--servers": options.servers = value.split(separator: ",").map(String.init)
        case "--users": options.users = max(2, number(value, for: name) / 2 * 2)
        case "--window": options.window = number(value, for: name)
        case "--rate": options.rate = number(value, for: name)
        case "--seconds": options.seconds = number(value, for: name)
        case "--warmup": options.warmup = number(value, for: name)
        case "--idle": options.idle = number(value, for: name)
        case "--pid": options.pid = number(value, for: name)
        case "--users-file": options.usersFile = value
        case "--then-rate": options.thenRate = number(value, for: name)
        case "--logins": options.logins = number(value, for: name)
        case "--then-seconds": options.thenSeconds = number(value, for: name)
        case "--storm": options.storm = number(value, for: name)
        case "--typing-rate": options.typingRate = number(value, for: name)
        case "--read-receipts": options.readReceiptsMilliseconds = number(value, for: name)
        case "--conversations-probe": options.conversationsProbe = number(value, for: name)
        case "--probe-user": options.probeUser = value
        case "--storm-users": options.stormUsers = value
        case "--jwt-secret": options.jwtSecret = value
        case "--guessers": options.guessers = number(value, for: name)
        case "--guess-accounts":
            guard value == "one" || value == "many" else { optionError("--guess-accounts is one or many") }
            options.guessOneAccount = value == "one"
        default: optionError("unknown option \(name)")
        }
    }
    return options
}

let options = parseOptions()
let address: ServerAddress
do { address = try ServerAddress(options.server) } catch { optionError("--server \(options.server): \(error)") }
guard ["127.0.0.1", "localhost", "::1"].contains(address.host) else { optionError("the bench targets loopback servers only, not \(address.host)") }
let api = ChatAPI(address: address)
let loadAddresses: [ServerAddress] = options.servers.isEmpty ? [address] : options.servers.map { url in
    guard let parsed = try? ServerAddress(url), ["127.0.0.1", "localhost", "::1"].contains(parsed.host) else {
        optionError("--servers takes loopback URLs, not \(url)")
    }
    return parsed
}

// MARK: - The conversation list of a user with many conversations

if options.conversationsProbe > 0 {
    guard let user = options.probeUser, let secret = options.jwtSecret else { optionError("--conversations-probe needs --probe-user and --jwt-secret") }
    let token = JWTSigner(secret: secret).sign(userID: user, issuedAt: Int64(Date().timeIntervalSince1970))
    var latencies: [UInt64] = []
    var after: String?
    var listed = 0
    for _ in 0..<options.conversationsProbe {
        let started = MonotonicClock.nanoseconds()
        guard let page = try? api.conversationPage(token: token, limit: 20, after: after) else { fatalError("GET /api/conversations failed") }
        latencies.append(MonotonicClock.nanoseconds() - started)
        listed += page.conversations.count
        after = page.next  // nil at the end: from the newest again
    }
    latencies.sort()
    func ms(_ p: Double) -> Double { Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1e6 }
    print(String(format: "conversations: %d pages of 20 (%d entries), ms per request: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f",
                 latencies.count, listed, ms(0.5), ms(0.9), ms(0.99), Double(latencies.last ?? 0) / 1e6))
    print(String(format: "summary: conversations_p50_ms=%.2f conversations_p99_ms=%.2f", ms(0.5), ms(0.99)))
    exit(0)
}

/// CPU seconds and RSS (KiB) of a process, from /proc.
func processUsage(_ pid: Int32) -> (cpu: Double, system: Double, rssKB: Int)? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    let cpu = (Double(fields[11])! + Double(fields[12])!) / ticks
    let rss = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
    return (cpu, Double(fields[12])! / ticks, rss)
}

/// This process's CPU seconds, user and system (the kernel's loopback TCP work lands in system).
func selfCPU() -> (user: Double, system: Double) {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    return (Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6, Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6)
}

/// CPU seconds all cores spent busy since boot (everything but idle and I/O wait), from /proc/stat.
func machineBusyCPU() -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8), let first = stat.split(separator: "\n").first else { return 0 }
    let ticks = first.split(separator: " ").dropFirst().compactMap { Double($0) }
    guard ticks.count >= 5 else { return 0 }
    return (ticks.reduce(0, +) - ticks[3] - ticks[4]) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

// MARK: - Users

// Users are created (bcrypt-bound: tens per second) once, and their tokens kept in
// --users-file when given, so later phases start at once and no login competes with the load.
struct BenchUser { let token: String, id: String, email: String }
var saved: [BenchUser] = []
if let path = options.usersFile, let text = try? String(contentsOfFile: path, encoding: .utf8) {
    saved = text.split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        return fields.count == 3 ? BenchUser(token: String(fields[0]), id: String(fields[1]), email: String(fields[2])) : nil
    }
}
let run = String(UInt32.random(in: 0...UInt32.max), radix: 36)
let missing = max(0, options.users - saved.count)
if missing > 0 { print("creating \(missing) users on \(address)…") }
final class Slots<T>: @unchecked Sendable {
    var values: [T?]
    let lock = NSLock()
    init(_ count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: T) { lock.lock(); values[index] = value; lock.unlock() }
}
let sessions = Slots<BenchUser>(missing)
DispatchQueue.concurrentPerform(iterations: missing) { index in
    let email = "bench-\(run)-\(index)@bench.chat"
    // Registered first, then logged in: no failed login counts against 127.0.0.1.
    guard (try? api.register(username: "bench \(index)", email: email, password: options.password)) != nil,
          let session = try? api.login(email: email, password: options.password) else { return }
    let id = session.user?.id ?? ChatAPI.userID(fromToken: session.token) ?? ""
    sessions.set(index, BenchUser(token: session.token, id: id, email: email))
}
let created = sessions.values.compactMap { $0 }
guard created.count == missing else { fatalError("only \(created.count) of \(missing) users could log in") }
if let path = options.usersFile, missing > 0 {
    saved += created
    try (saved.map { "\($0.token) \($0.id) \($0.email)" }.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
}
let users = Array((saved.isEmpty ? created : saved).prefix(options.users))

// MARK: - Idle connections

if options.idle > 0, let pid = options.pid {
    let before = processUsage(pid)!.rssKB
    var idle: [BenchConnection] = []
    for index in 0..<options.idle {
        idle.append(try BenchConnection(address: address, token: users[index % users.count].token, index: index, peerID: users[0].id))
    }
    Thread.sleep(forTimeInterval: 1)
    let after = processUsage(pid)!.rssKB
    print(String(format: "idle: %d Socket.IO connections held, server RSS %d → %d KiB: %.2f KiB per connection",
                 options.idle, before, after, Double(after - before) / Double(options.idle)))
    print(String(format: "summary: idle_kib_per_connection=%.2f", Double(after - before) / Double(options.idle)))
    for connection in idle { close(connection.fd) }
    Thread.sleep(forTimeInterval: 1)
}

// MARK: - The reconnect storm

if options.storm > 0 {
    guard let path = options.stormUsers, let secret = options.jwtSecret else { optionError("--storm needs --storm-users and --jwt-secret") }
    let ids = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init).prefix(options.storm)
    guard ids.count == options.storm else { optionError("--storm \(options.storm) needs as many user ids in \(path), not \(ids.count)") }
    let signer = JWTSigner(secret: secret)
    let issuedAt = Int64(Date().timeIntervalSince1970)
    let receivers = ids.enumerated().map { StormSocket(index: $0.offset, token: signer.sign(userID: $0.element, issuedAt: issuedAt)) }
    let senders = try users.enumerated().map { index, user in
        try BenchConnection(address: address, token: user.token, index: index, peerID: users[index ^ 1].id)
    }
    ReconnectStorm(address: address, senders: senders, receivers: receivers, receiverIDs: Array(ids), rate: max(options.rate, 1),
                   serverPID: options.pid).run()
    exit(0)
}

// MARK: - Logins

/// With --logins N: N threads log users in, one request after another, for the whole run
/// (bcrypt-bound on the server), while the chat load below runs and is measured as usual.
final class LoginLoad: @unchecked Sendable {
    let lock = NSLock()
    var succeeded = 0
    var failed = 0
    var measuredFrom = 0
    var stop = false
}
let loginLoad = LoginLoad()
if options.logins > 0 {
    let emails = users.map(\.email)
    for thread in 0..<options.logins {
        Thread.detachNewThread {
            let client = ChatAPI(address: address)
            var index = thread
            while true {
                loginLoad.lock.lock()
                let stop = loginLoad.stop
                loginLoad.lock.unlock()
                if stop { return }
                let ok = (try? client.login(email: emails[index % emails.count], password: options.password)) != nil
                loginLoad.lock.lock()
                if ok { loginLoad.succeeded += 1 } else { loginLoad.failed += 1 }
                loginLoad.lock.unlock()
                index += options.logins
            }
        }
    }
}

let guessStorm = options.guessers > 0 ? GuessStorm(threads: options.guessers, port: address.port, oneAccount: options.guessOneAccount) : nil

// MARK: - Load

let connections = try users.enumerated().map { index, user in
    try BenchConnection(address: loadAddresses[index % loadAddresses.count], token: user.token, index: index, peerID: users[index ^ 1].id,
                        recover: options.recover)
}
for connection in connections { connection.trackUnread = options.readReceiptsMilliseconds > 0 }
let epollFD = epoll_create1(0)
for connection in connections {
    var event = epoll_event()
    event.events = EPOLLIN.rawValue
    event.data.u32 = UInt32(connection.index)
    epoll_ctl(epollFD, EPOLL_CTL_ADD, connection.fd, &event)
}

var sentLatencies: [UInt64] = []
var endToEnd: [UInt64] = []
sentLatencies.reserveCapacity(1 << 20)
endToEnd.reserveCapacity(1 << 20)
let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
var events = [epoll_event](repeating: epoll_event(), count: 512)
let start = MonotonicClock.nanoseconds()
let measureFrom = start + UInt64(options.warmup * 1e9)
let stopAt = measureFrom + UInt64(options.seconds * 1e9)
/// After the main phase, an optional open-loop phase at `thenRate` (recovery after overload).
let thenUntil = stopAt + UInt64(options.thenSeconds * 1e9)
var measuredSent = 0
/// Open loop: at most this many messages unanswered per connection (a client's send buffer).
let maxInFlight = 1000
/// Per connection, the messages of the measured time acknowledged: how fairly the server shares.
var measuredPerSender = [Int](repeating: 0, count: connections.count)
var measuring = false
var serverBefore: (cpu: Double, system: Double, rssKB: Int)?
var benchCPUBefore = selfCPU()
var machineBusyBefore = machineBusyCPU()
var nextSender = 0
var scheduled = 0.0
var nextTypist = 0
var typingScheduled = 0.0
var typingSent = 0
var receiptsSent = 0, receiptsReceived = 0
var lastReceipts = start
var nextMarkRead = connections.map { _ in start + UInt64.random(in: 0..<UInt64(max(1, options.readReceiptsMilliseconds)) * 1_000_000) }
var scheduledSince = start
var maxRSS = 0
/// Whole-run counts, warm-up included: what the server must have stored is `acknowledged`.
var acknowledged = 0, refused = 0, heldBack = 0

/// One line per second of the run when --timeline is given.
struct Second {
    var acknowledged = 0
    var refused = 0
    var heldBack = 0
    var latencies: [UInt64] = []
    var rssKB = 0
}
var timeline: [Second] = []
@MainActor func second(_ at: UInt64) -> Int {
    let index = Int((at - start) / 1_000_000_000)
    while timeline.count <= index { timeline.append(Second()) }
    return index
}

if options.rate == 0 {
    for connection in connections { for _ in 0..<options.window { connection.queueMessage(now: MonotonicClock.nanoseconds()) }; connection.flush() }
}
var lastSample = start
var touched: [Bool] = Array(repeating: false, count: connections.count)
while true {
    let now = MonotonicClock.nanoseconds()
    if now >= thenUntil { break }
    if !measuring, now >= measureFrom {
        measuring = true
        if let pid = options.pid { serverBefore = processUsage(pid) }
        benchCPUBefore = selfCPU()
        machineBusyBefore = machineBusyCPU()
        loginLoad.lock.lock()
        loginLoad.measuredFrom = loginLoad.succeeded
        loginLoad.lock.unlock()
        guessStorm?.startMeasuring()
    }
    let rate = now < stopAt ? options.rate : options.thenRate
    if now >= stopAt, scheduledSince < stopAt { (scheduledSince, scheduled) = (stopAt, 0) }
    if rate > 0 {
        // Open loop: messages due since the phase began at its fixed rate, round-robin over
        // users, each connection written once per turn. A connection whose socket is full
        // (the server is pushing back), or with `maxInFlight` messages unanswered, holds its
        // messages back instead of queueing without end (loopback's socket buffers alone hold
        // megabytes: hundreds of thousands of messages, seconds of waiting, under overload).
        let due = Double(now - scheduledSince) / 1e9 * Double(rate)
        while scheduled < due {
            let connection = connections[nextSender]
            if connection.pendingOutput < 256 * 1024 && connection.inFlight < maxInFlight {
                connection.queueMessage(now: now)
                touched[nextSender] = true
            } else {
                heldBack += 1
                if options.timeline { timeline[second(now)].heldBack += 1 }
            }
            nextSender = (nextSender + 1) % connections.count
            scheduled += 1
        }
        for index in touched.indices where touched[index] {
            touched[index] = false
            connections[index].flush()
        }
    }
    if options.typingRate > 0, now < stopAt {
        // Typing events at their own fixed rate, round-robin, beside the messages.
        let due = Double(now - start) / 1e9 * Double(options.typingRate)
        while typingScheduled < due {
            connections[nextTypist].queueTyping()
            connections[nextTypist].flush()
            nextTypist = (nextTypist + 1) % connections.count
            typingScheduled += 1
            typingSent += 1
        }
    }
    if options.readReceiptsMilliseconds > 0, now < stopAt, now - lastReceipts >= 1_000_000 {
        // Each user on a clock of its own (started at a random point of the period), as
        // independent clients are: not every receipt of the run in the same millisecond.
        lastReceipts = now
        let period = UInt64(options.readReceiptsMilliseconds) * 1_000_000
        for (index, connection) in connections.enumerated() where now >= nextMarkRead[index] {
            nextMarkRead[index] = now + period
            if connection.queueMarkRead() {
                receiptsSent += 1
                connection.flush()
            }
        }
    }
    if let pid = options.pid, now - lastSample > 500_000_000 {
        lastSample = now
        let rss = processUsage(pid)?.rssKB ?? 0
        maxRSS = max(maxRSS, rss)
        if options.timeline { timeline[second(now)].rssKB = max(timeline[second(now)].rssKB, rss) }
    }
    let count = epoll_wait(epollFD, &events, Int32(events.count), rate > 0 ? 1 : 50)
    guard count >= 0 else { continue }
    for i in 0..<Int(count) {
        let connection = connections[Int(events[i].data.u32)]
        let alive = connection.readEvents(scratch) { event in
            let arrived = MonotonicClock.nanoseconds()
            switch event {
            case .sent(let sentAt, _):
                acknowledged += 1
                if sentAt >= measureFrom && sentAt < stopAt {
                    sentLatencies.append(arrived - sentAt)
                    measuredSent += 1
                    measuredPerSender[connection.index] += 1
                }
                if options.timeline {
                    let index = second(arrived)
                    timeline[index].acknowledged += 1
                    timeline[index].latencies.append(arrived - sentAt)
                }
                if options.rate == 0, arrived < stopAt { connection.queueMessage(now: arrived) }
            case .refused:
                refused += 1
                if options.timeline { timeline[second(arrived)].refused += 1 }
                if options.rate == 0, arrived < stopAt { connection.queueMessage(now: arrived) }
            case .received(let sentAt):
                if sentAt >= measureFrom && sentAt < stopAt { endToEnd.append(arrived - sentAt) }
            case .receipt:
                receiptsReceived += 1
            }
        }
        if !alive { fatalError("the server closed connection \(connection.index)") }
        connection.flush()
    }
    for connection in connections where !connection.flush() {}
}
let elapsed = Double(min(MonotonicClock.nanoseconds(), stopAt) - measureFrom) / 1e9
loginLoad.lock.lock()
loginLoad.stop = true
let loginsMeasured = loginLoad.succeeded - loginLoad.measuredFrom
let loginsFailed = loginLoad.failed
loginLoad.lock.unlock()
let guesses = guessStorm?.stop() ?? [:]
let benchCPUAfter = selfCPU()
let machineBusy = machineBusyCPU() - machineBusyBefore
let benchUser = benchCPUAfter.user - benchCPUBefore.user
let benchSystem = benchCPUAfter.system - benchCPUBefore.system
let benchCPU = benchUser + benchSystem
let serverAfter = options.pid.flatMap { processUsage($0) }

// Every message sent gets its answer (stored or refused) before the figures are final.
let drainUntil = MonotonicClock.nanoseconds() + 15_000_000_000
while connections.contains(where: { $0.inFlight > 0 }) && MonotonicClock.nanoseconds() < drainUntil {
    let count = epoll_wait(epollFD, &events, Int32(events.count), 100)
    for i in 0..<Int(max(0, count)) {
        let connection = connections[Int(events[i].data.u32)]
        _ = connection.readEvents(scratch) { event in
            switch event {
            case .sent: acknowledged += 1
            case .refused: refused += 1
            case .received, .receipt: break
            }
        }
        connection.flush()
    }
    for connection in connections where !connection.flush() {}
}
let unanswered = connections.reduce(0) { $0 + $1.inFlight }

func percentile(_ values: [UInt64], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1e6
}

func line(_ name: String, _ values: [UInt64]) -> String {
    String(format: "%@ ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f", name, percentile(values, 0.5), percentile(values, 0.9), percentile(values, 0.99),
           Double(values.max() ?? 0) / 1e6)
}

if options.timeline {
    print("second  acknowledged  refused  held back  ack p50 ms  ack p99 ms  server RSS KiB")
    for (index, entry) in timeline.enumerated() {
        print(String(format: "%6d  %12d  %7d  %9d  %10.2f  %10.2f  %14d", index, entry.acknowledged, entry.refused, entry.heldBack,
                     percentile(entry.latencies, 0.5), percentile(entry.latencies, 0.99), entry.rssKB))
    }
}
let mode = options.rate > 0 ? "open loop at \(options.rate) msg/s" : "closed loop, window \(options.window) per sender"
let then = options.thenSeconds > 0 ? ", then \(options.thenRate) msg/s for \(options.thenSeconds) s" : ""
print("\(options.users) users, \(mode), \(options.seconds) s measured after \(options.warmup) s warm-up\(then)")
print(String(format: "persisted: %.0f messages/s (%d in %.1f s)", Double(measuredSent) / elapsed, measuredSent, elapsed))
print(line("ack (message_sent)", sentLatencies))
print(line("end to end (receive_message)", endToEnd))
let perSender = measuredPerSender.sorted()
let medianPerSender = perSender.isEmpty ? 0 : perSender[perSender.count / 2]
print("per sender, acknowledged of the measured time: min \(perSender.first ?? 0)  p10 \(perSender.isEmpty ? 0 : perSender[perSender.count / 10])  "
      + "median \(medianPerSender)  max \(perSender.last ?? 0)")
if options.typingRate > 0 {
    print(String(format: "typing: %d events sent (%.0f/s) beside the messages", typingSent, Double(typingSent) / (Double(MonotonicClock.nanoseconds() - start) / 1e9)))
}
if options.readReceiptsMilliseconds > 0 {
    print("read receipts: \(receiptsSent) mark_read sent (every \(options.readReceiptsMilliseconds) ms per user with news), \(receiptsReceived) messages_read received")
}
if options.logins > 0 {
    print(String(format: "logins: %.1f per second from %d threads (%d failed)", Double(loginsMeasured) / elapsed, options.logins, loginsFailed))
}
if options.guessers > 0 {
    let answered = guesses.values.reduce(0, +)
    let byStatus = guesses.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
    print(String(format: "guesses: %.0f per second answered from %d threads at %@ (%@)", Double(answered) / elapsed, options.guessers,
                 options.guessOneAccount ? "one account" : "a new account each", byStatus))
}
print("whole run: acknowledged \(acknowledged), refused \(refused), unanswered \(unanswered), held back (socket full or \(maxInFlight) unanswered) \(heldBack)")
if let before = serverBefore, let after = serverAfter {
    let cpu = after.cpu - before.cpu
    let system = after.system - before.system
    let rest = machineBusy - cpu - benchCPU
    print(String(format: "PostgreSQL and the rest of the machine: %.2f CPU s, %.1f µs per message", rest, rest / Double(max(1, measuredSent)) * 1e6))
    print(String(format: "server: %.2f CPU s (%.0f%% of one core), %.1f µs CPU per message (kernel %.1f), RSS %d KiB (max %d)",
                 cpu, cpu / elapsed * 100, cpu / Double(max(1, measuredSent)) * 1e6, system / Double(max(1, measuredSent)) * 1e6,
                 after.rssKB, max(maxRSS, after.rssKB)))
}
// One line for scripts (scripts/bench.sh builds its side-by-side table from it).
var summary = String(format: "summary: logins_per_s=%.1f persisted_per_s=%.0f ack_p50_ms=%.2f ack_p99_ms=%.2f acknowledged=%d refused=%d unanswered=%d",
                     Double(loginsMeasured) / elapsed, Double(measuredSent) / elapsed, percentile(sentLatencies, 0.5), percentile(sentLatencies, 0.99), acknowledged, refused, unanswered)
if let before = serverBefore, let after = serverAfter {
    summary += String(format: " server_cpu_us=%.1f server_rss_max_kib=%d", (after.cpu - before.cpu) / Double(max(1, measuredSent)) * 1e6, max(maxRSS, after.rssKB))
}
if options.guessers > 0 {
    summary += String(format: " guesses_per_s=%.0f guesses_429=%d guesses_401=%d", Double(guesses.values.reduce(0, +)) / elapsed,
                      guesses[429] ?? 0, guesses[401] ?? 0)
}
summary += String(format: " e2e_p50_ms=%.2f e2e_p99_ms=%.2f", percentile(endToEnd, 0.5), percentile(endToEnd, 0.99))
summary += String(format: " sender_min_over_median=%.2f", Double(perSender.first ?? 0) / Double(max(1, medianPerSender)))
if options.readReceiptsMilliseconds > 0 { summary += " receipts_sent=\(receiptsSent) receipts_received=\(receiptsReceived)" }
let perMessage = 1e6 / Double(max(1, measuredSent))
summary += String(format: " bench_cpu_us=%.1f", benchCPU * perMessage)
print(String(format: "bench itself: %.2f CPU s, %.1f µs CPU per message (user %.1f, kernel %.1f)", benchCPU, benchCPU * perMessage,
             benchUser * perMessage, benchSystem * perMessage))
print(summary)
