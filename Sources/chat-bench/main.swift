import CLinux
import ChatClient
import Foundation

// chat-bench: users in pairs chat 1:1 over Socket.IO/WebSocket against a running server and
// the figures come out: persisted messages/s (each counted at its `message_sent`, which both
// this server and the Node original emit after the INSERT), ack and end-to-end latency
// percentiles, server CPU and RSS, KB per idle connection, and what the bench itself cost.
// Bounded: every phase has a duration and stops by itself. Loopback servers only.

struct Options {
    var server = "http://127.0.0.1:5001"
    var users = 200
    var window = 8
    var rate = 0  // messages/s in all; 0 = closed loop with `window` in flight per sender
    var seconds = 10.0
    var warmup = 2.0
    var idle = 0
    var pid: Int32?
    var password = "bench-password"
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = Array(CommandLine.arguments.dropFirst())
    while !arguments.isEmpty {
        let name = arguments.removeFirst()
        guard let value = arguments.first else { fatalError("\(name) needs a value") }
        arguments.removeFirst()
        switch name {
        case "--server": options.server = value
        case "--users": options.users = max(2, Int(value)! / 2 * 2)
        case "--window": options.window = Int(value)!
        case "--rate": options.rate = Int(value)!
        case "--seconds": options.seconds = Double(value)!
        case "--warmup": options.warmup = Double(value)!
        case "--idle": options.idle = Int(value)!
        case "--pid": options.pid = Int32(value)!
        default: fatalError("unknown option \(name); see the README's Performance section")
        }
    }
    return options
}

let options = parseOptions()
let address = try ServerAddress(options.server)
guard ["127.0.0.1", "localhost", "::1"].contains(address.host) else { fatalError("the bench targets loopback servers only") }
let api = ChatAPI(address: address)

func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// CPU seconds and RSS (KiB) of a process, from /proc.
func processUsage(_ pid: Int32) -> (cpu: Double, rssKB: Int)? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    let cpu = (Double(fields[11])! + Double(fields[12])!) / ticks
    let rss = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
    return (cpu, rss)
}

func selfCPU() -> Double {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

// MARK: - Users

let run = String(UInt32.random(in: 0...UInt32.max), radix: 36)
print("creating \(options.users) users on \(address)…")
final class Slots<T>: @unchecked Sendable {
    var values: [T?]
    let lock = NSLock()
    init(_ count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: T) { lock.lock(); values[index] = value; lock.unlock() }
}
let sessions = Slots<(token: String, id: String)>(options.users)
DispatchQueue.concurrentPerform(iterations: options.users) { index in
    let email = "bench-\(run)-\(index)@bench.chat"
    guard let session = try? api.login(email: email, password: options.password, registerAs: "bench \(index)") else { return }
    let id = session.user?.id ?? ChatAPI.userID(fromToken: session.token) ?? ""
    sessions.set(index, (session.token, id))
}
let users = sessions.values.compactMap { $0 }
guard users.count == options.users else { fatalError("only \(users.count) of \(options.users) users could log in") }

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
    for connection in idle { close(connection.fd) }
    Thread.sleep(forTimeInterval: 1)
}

// MARK: - Load

let connections = try users.enumerated().map { index, user in
    try BenchConnection(address: address, token: user.token, index: index, peerID: users[index ^ 1].id)
}
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
let start = nowNanoseconds()
let measureFrom = start + UInt64(options.warmup * 1e9)
let stopAt = measureFrom + UInt64(options.seconds * 1e9)
var measuredSent = 0
var serverBefore: (cpu: Double, rssKB: Int)?
let benchCPUBefore = selfCPU()
var nextSender = 0
var scheduled = 0.0
var maxRSS = 0

if options.rate == 0 {
    for connection in connections { for _ in 0..<options.window { connection.queueMessage(now: nowNanoseconds()) }; connection.flush() }
}
var lastSample = start
while true {
    let now = nowNanoseconds()
    if now >= stopAt { break }
    if serverBefore == nil, now >= measureFrom, let pid = options.pid { serverBefore = processUsage(pid) }
    if options.rate > 0 {
        // Open loop: messages due since the start at the fixed rate, round-robin over users.
        let due = Double(now - start) / 1e9 * Double(options.rate)
        while scheduled < due {
            connections[nextSender].queueMessage(now: now)
            connections[nextSender].flush()
            nextSender = (nextSender + 1) % connections.count
            scheduled += 1
        }
    }
    if let pid = options.pid, now - lastSample > 500_000_000 {
        lastSample = now
        maxRSS = max(maxRSS, processUsage(pid)?.rssKB ?? 0)
    }
    let count = epoll_wait(epollFD, &events, Int32(events.count), options.rate > 0 ? 1 : 50)
    guard count >= 0 else { continue }
    for i in 0..<Int(count) {
        let connection = connections[Int(events[i].data.u32)]
        let alive = connection.readEvents(scratch) { event in
            let arrived = nowNanoseconds()
            switch event {
            case .sent(let sentAt):
                if sentAt >= measureFrom { sentLatencies.append(arrived - sentAt); measuredSent += 1 }
                if options.rate == 0, arrived < stopAt { connection.queueMessage(now: arrived) }
            case .received(let sentAt):
                if sentAt >= measureFrom { endToEnd.append(arrived - sentAt) }
            }
        }
        if !alive { fatalError("the server closed connection \(connection.index)") }
        connection.flush()
    }
    for connection in connections where !connection.flush() {}
}
let elapsed = Double(nowNanoseconds() - measureFrom) / 1e9
let benchCPU = selfCPU() - benchCPUBefore

func percentile(_ values: [UInt64], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1e6
}

func line(_ name: String, _ values: [UInt64]) -> String {
    String(format: "%@ ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f", name, percentile(values, 0.5), percentile(values, 0.9), percentile(values, 0.99),
           Double(values.max() ?? 0) / 1e6)
}

let mode = options.rate > 0 ? "open loop at \(options.rate) msg/s" : "closed loop, window \(options.window) per sender"
print("\(options.users) users, \(mode), \(options.seconds) s measured after \(options.warmup) s warm-up")
print(String(format: "persisted: %.0f messages/s (%d in %.1f s)", Double(measuredSent) / elapsed, measuredSent, elapsed))
print(line("ack (message_sent)", sentLatencies))
print(line("end to end (receive_message)", endToEnd))
if let pid = options.pid, let before = serverBefore, let after = processUsage(pid) {
    let cpu = after.cpu - before.cpu
    print(String(format: "server: %.2f CPU s (%.0f%% of one core), %.1f µs CPU per message, RSS %d KiB (max %d)",
                 cpu, cpu / elapsed * 100, cpu / Double(max(1, measuredSent)) * 1e6, after.rssKB, max(maxRSS, after.rssKB)))
}
print(String(format: "bench itself: %.2f CPU s, %.1f µs CPU per message", benchCPU, benchCPU / Double(max(1, measuredSent)) * 1e6))
