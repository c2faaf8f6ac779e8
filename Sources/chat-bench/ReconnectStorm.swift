import CLinux
import ChatClient
import Foundation
import ServerRuntime
import WebSocket

/// One receiver of the reconnect storm: a Socket.IO connection over WebSocket that asks for
/// connection state recovery, keeps its pid and last offset as the socket.io client does, and
/// counts the messages it gets by their "<sender>:<sequence>" key. It opens without waiting
/// (the upgrade request and the CONNECT leave in one write, the server reading the CONNECT as
/// the upgrade's leftover), so 10,000 reconnect at once from one thread.
final class StormSocket {
    let index: Int
    let token: String
    private(set) var fd: Int32 = -1
    /// The HTTP answer until its blank line; nil once upgraded.
    private var head: [UInt8]? = []
    private var decoder = WebSocketDecoder(role: .client, maxMessageBytes: 1 << 20)
    private var output: [UInt8] = []
    private var handshake = WebSocketClientHandshake()
    private(set) var pid: String?
    private(set) var offset: String?
    private(set) var connected = false
    private(set) var recovered = false
    /// Keys of the messages received, and how many came twice.
    private(set) var received: Set<UInt64> = []
    private(set) var duplicates = 0

    init(index: Int, token: String) {
        self.index = index
        self.token = token
    }

    static func key(sender: UInt64, sequence: UInt64) -> UInt64 { sender << 40 | sequence }

    /// Connects (blocking: loopback) and sends the upgrade and the CONNECT — with the pid and
    /// offset of the last session, if any.
    func open(address: ServerAddress, resolved: UnsafeMutablePointer<addrinfo>) throws {
        let info = resolved
        fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            close(fd)
            throw ClientError("connect: \(String(cString: strerror(errno)))")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        head = []
        decoder = WebSocketDecoder(role: .client, maxMessageBytes: 1 << 20)
        connected = false
        recovered = false
        handshake = WebSocketClientHandshake()
        output = handshake.request(target: "/socket.io/?EIO=4&transport=websocket", host: address.hostAndPort)
        var auth = "{\"token\":\"\(token)\",\"recover\":true"
        if let pid {
            auth += ",\"pid\":\"\(pid)\""
            if let offset { auth += ",\"offset\":\"\(offset)\"" }
        }
        sendText(Array(("40" + auth + "}").utf8))
        flush()
    }

    /// Vanishes: the socket is closed, no close frame.
    func drop() {
        close(fd)
        fd = -1
        connected = false
    }

    private func sendText(_ payload: [UInt8]) {
        WebSocketFrameEncoder.appendFrame(.text, payload: payload, maskingKey: (1, 2, 3, 4), to: &output)
    }

    func flush() {
        guard !output.isEmpty, fd >= 0 else { return }
        let count = output.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if count > 0 { output.removeFirst(count) }
    }

    /// Reads what arrived; false when the server closed the connection.
    func read(_ scratch: UnsafeMutableRawBufferPointer) -> Bool {
        let alive = receiveAvailable(fd, scratch) { bytes in
            guard var pending = head else { return decoder.feed(bytes) }
            pending += bytes
            let length: Int?
            do { length = try handshake.headLength(ofResponse: pending) } catch { fatalError("storm: upgrade refused: \(error)") }
            guard let length else { head = pending; return }
            head = nil
            decoder.feed(pending[length...])
        }
        guard alive else { return false }
        while let message = try? decoder.next() {
            guard case .text(let bytes) = message, let kind = bytes.first else { continue }
            if bytes == [0x32] { sendText([0x33]); continue }  // ping → pong
            guard kind == 0x34, bytes.count > 2 else { continue }
            switch bytes[1] {
            case 0x30:  // 40{"sid","pid"}: connected
                let newPID = Self.stringValue(of: "pid", in: bytes)
                recovered = pid != nil && newPID == pid
                pid = newPID
                connected = true
            case 0x34:
                fatalError("storm: CONNECT refused: \(String(decoding: bytes, as: UTF8.self))")
            case 0x32:  // 42["receive_message",{…},"<offset>"]
                guard let fields = BenchConnection.messageFields(bytes) else { continue }
                if !received.insert(Self.key(sender: fields.index, sequence: fields.sequence)).inserted { duplicates += 1 }
                if let last = Self.lastStringArgument(bytes) { offset = last }
            default:
                continue
            }
        }
        flush()
        return true
    }

    /// `"name":"value"` in a small JSON packet.
    private static func stringValue(of name: String, in bytes: [UInt8]) -> String? {
        let key = Array("\"\(name)\":\"".utf8)
        guard let start = bytes.firstRange(of: key)?.upperBound, let end = bytes[start...].firstIndex(of: 0x22) else { return nil }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// The event's last argument when it is a string (`…,"c1a"]`): the offset.
    private static func lastStringArgument(_ bytes: [UInt8]) -> String? {
        guard bytes.count > 4, bytes[bytes.count - 1] == 0x5D, bytes[bytes.count - 2] == 0x22,
              let open = bytes[..<(bytes.count - 2)].lastIndex(of: 0x22) else { return nil }
        return String(decoding: bytes[(open + 1)..<(bytes.count - 2)], as: UTF8.self)
    }
}

/// The reconnect storm (`--storm N`): N receivers that recover, messages flowing to them at
/// `--rate` from the senders; after `dropAfter` seconds all N drop at once, and `awaySeconds`
/// later all reconnect with their pid and offset while the flow goes on. Measured: the time
/// until every socket's CONNECT reply says it recovered, the time until every message
/// acknowledged before the reconnect has reached its receiver, the server's peak RSS, and —
/// after the flow stops and everything drains — that each receiver got exactly the messages
/// acknowledged to it, each once.
struct ReconnectStorm {
    let address: ServerAddress
    let senders: [BenchConnection]
    let receivers: [StormSocket]
    let receiverIDs: [String]
    let rate: Int
    let serverPID: Int32?
    var dropAfter = 3.0
    var awaySeconds = 1.0
    var flowSeconds = 10.0

    func run() {
        let epollFD = epoll_create1(0)
        defer { close(epollFD) }
        let senderFlag: UInt32 = 1 << 31
        func watch(_ fd: Int32, _ tag: UInt32) {
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.u32 = tag
            epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event)
        }
        for sender in senders { watch(sender.fd, senderFlag | UInt32(sender.index)) }
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { scratch.deallocate() }
        var events = [epoll_event](repeating: epoll_event(), count: 1024)
        /// For each sender, the receiver of each of its messages by sequence.
        var receiverOf = [[Int]](repeating: [0], count: senders.count)
        /// Per receiver, the keys of the messages acknowledged to it.
        var expected = [Set<UInt64>](repeating: [], count: receivers.count)
        var acknowledged = 0, refused = 0
        var peakRSS = 0
        var lastSample: UInt64 = 0

        /// One pass: read everything ready, answer, sample the server's RSS.
        func poll(timeout: Int32) {
            let count = epoll_wait(epollFD, &events, Int32(events.count), timeout)
            for i in 0..<Int(max(0, count)) {
                let tag = events[i].data.u32
                if tag & senderFlag != 0 {
                    let sender = senders[Int(tag & ~senderFlag)]
                    let alive = sender.readEvents(scratch) { event in
                        switch event {
                        case .sent(_, let sequence):
                            acknowledged += 1
                            let receiver = receiverOf[sender.index][sequence]
                            expected[receiver].insert(StormSocket.key(sender: UInt64(sender.index), sequence: UInt64(sequence)))
                        case .refused: refused += 1
                        case .received, .receipt: break
                        }
                    }
                    if !alive { fatalError("storm: the server closed sender \(sender.index)") }
                    sender.flush()
                } else {
                    let receiver = receivers[Int(tag)]
                    guard receiver.fd >= 0 else { continue }
                    if !receiver.read(scratch) { fatalError("storm: the server closed receiver \(receiver.index)") }
                }
            }
            for sender in senders where !sender.flush() {}
            let now = MonotonicClock.nanoseconds()
            if let serverPID, now - lastSample > 100_000_000 {
                lastSample = now
                peakRSS = max(peakRSS, processUsage(serverPID)?.rssKB ?? 0)
            }
        }

        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var resolved: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address.host, String(address.port), &hints, &resolved) == 0, let resolved else { fatalError("storm: cannot resolve \(address)") }
        defer { freeaddrinfo(resolved) }
        func openAll() {
            for (index, receiver) in receivers.enumerated() {
                do { try receiver.open(address: address, resolved: resolved) } catch { fatalError("storm: \(error)") }
                watch(receiver.fd, UInt32(index))
                if index % 256 == 255 { poll(timeout: 0) }
            }
        }

        // Everyone connected first.
        var started = MonotonicClock.nanoseconds()
        openAll()
        while receivers.contains(where: { !$0.connected }) {
            poll(timeout: 10)
            if MonotonicClock.nanoseconds() - started > 60_000_000_000 { fatalError("storm: receivers did not connect within 60 s") }
        }
        print(String(format: "storm: %d receivers connected in %.1f s", receivers.count, Double(MonotonicClock.nanoseconds() - started) / 1e9))

        // The flow, the drop, the reconnect.
        started = MonotonicClock.nanoseconds()
        let seconds = { Double(MonotonicClock.nanoseconds() - started) / 1e9 }
        var scheduled = 0, nextSender = 0, nextReceiver = 0
        var dropped = false, reconnectedAt: UInt64?
        var owedAtReconnect: [Set<UInt64>] = []
        var receivedBeforeDrop = 0
        var allRecovered: Double?, caughtUp: Double?, reconnectsSent = 0.0
        var cpuAtReconnect = (server: 0.0, bench: 0.0, machine: 0.0), cpuUntilRecovered = (server: 0.0, bench: 0.0, rest: 0.0)
        var notRecovered = 0
        while seconds() < flowSeconds {
            let now = seconds()
            while Double(scheduled) < now * Double(rate) {
                let sender = senders[nextSender]
                sender.queueMessage(now: MonotonicClock.nanoseconds(), to: receiverIDs[nextReceiver])
                receiverOf[sender.index].append(nextReceiver)
                nextSender = (nextSender + 1) % senders.count
                nextReceiver = (nextReceiver + 1) % receivers.count
                scheduled += 1
            }
            if !dropped, now >= dropAfter {
                dropped = true
                receivedBeforeDrop = receivers.reduce(0) { $0 + $1.received.count }
                for receiver in receivers { receiver.drop() }  // close() also leaves the epoll set
            }
            if dropped, reconnectedAt == nil, now >= dropAfter + awaySeconds {
                reconnectedAt = MonotonicClock.nanoseconds()
                owedAtReconnect = expected
                cpuAtReconnect = (serverPID.flatMap { processUsage($0)?.cpu } ?? 0, selfCPU().user + selfCPU().system, machineBusyCPU())
                openAll()
                reconnectsSent = Double(MonotonicClock.nanoseconds() - reconnectedAt!) / 1e9
            }
            if let reconnectedAt {
                let since = Double(MonotonicClock.nanoseconds() - reconnectedAt) / 1e9
                if allRecovered == nil, receivers.allSatisfy(\.connected) {
                    allRecovered = since
                    let server = (serverPID.flatMap { processUsage($0)?.cpu } ?? 0) - cpuAtReconnect.server
                    let bench = selfCPU().user + selfCPU().system - cpuAtReconnect.bench
                    cpuUntilRecovered = (server, bench, machineBusyCPU() - cpuAtReconnect.machine - server - bench)
                    notRecovered = receivers.filter { !$0.recovered }.count
                }
                if caughtUp == nil, allRecovered != nil,
                   receivers.indices.allSatisfy({ owedAtReconnect[$0].isSubset(of: receivers[$0].received) }) {
                    caughtUp = since
                }
            }
            poll(timeout: 1)
        }
        // Drain: every message answered and delivered, up to 15 s.
        let drainUntil = MonotonicClock.nanoseconds() + 15_000_000_000
        while MonotonicClock.nanoseconds() < drainUntil,
              senders.contains(where: { $0.inFlight > 0 }) || receivers.indices.contains(where: { !expected[$0].isSubset(of: receivers[$0].received) }) {
            poll(timeout: 10)
            if let reconnectedAt, caughtUp == nil,
               receivers.indices.allSatisfy({ owedAtReconnect[$0].isSubset(of: receivers[$0].received) }) {
                caughtUp = Double(MonotonicClock.nanoseconds() - reconnectedAt) / 1e9
            }
        }
        var lost = 0, extra = 0
        for index in receivers.indices {
            lost += expected[index].subtracting(receivers[index].received).count
            extra += receivers[index].received.subtracting(expected[index]).count
        }
        let duplicates = receivers.reduce(0) { $0 + $1.duplicates }
        let missed = owedAtReconnect.reduce(0) { $0 + $1.count } - receivedBeforeDrop
        print(String(format: "storm: %d msg/s to %d receivers; all dropped at %.0f s, all reconnected %.0f s later with their pid and offset",
                     rate, receivers.count, dropAfter, awaySeconds))
        print(String(format: "storm: every socket recovered in %@ s (%d not recovered; the bench took %.2f s to open the %d connections); every message missed (%d) delivered in %@ s",
                     allRecovered.map { String(format: "%.2f", $0) } ?? "—", notRecovered, reconnectsSent, receivers.count, missed, caughtUp.map { String(format: "%.2f", $0) } ?? "—"))
        print(String(format: "storm: CPU from the reconnect until all recovered: server %.2f s, bench %.2f s, PostgreSQL and the rest %.2f s",
                     cpuUntilRecovered.server, cpuUntilRecovered.bench, cpuUntilRecovered.rest))
        print("storm: acknowledged \(acknowledged), refused \(refused); delivered: lost \(lost), extra \(extra), twice \(duplicates); server peak RSS \(peakRSS) KiB")
        print(String(format: "summary: storm_sockets=%d storm_recovered_s=%@ storm_caught_up_s=%@ storm_missed=%d storm_not_recovered=%d storm_lost=%d storm_extra=%d storm_duplicates=%d storm_peak_rss_kib=%d acknowledged=%d refused=%d",
                     receivers.count, allRecovered.map { String(format: "%.2f", $0) } ?? "-1", caughtUp.map { String(format: "%.2f", $0) } ?? "-1",
                     missed, notRecovered, lost, extra, duplicates, peakRSS, acknowledged, refused))
    }
}
