import CLinux
import ChatClient
import Foundation
import WebSocket

/// One benchmark user: a Socket.IO connection over WebSocket, driven without blocking by the
/// bench's single epoll loop. It frames and scans bytes directly — no JSON tree per message —
/// so the bench costs far less per message than a server does.
/// Reads what a non-blocking socket has now, chunk by chunk into `feed`; false when the peer
/// closed the connection or it failed.
func receiveAvailable(_ fd: Int32, _ scratch: UnsafeMutableRawBufferPointer, _ feed: (UnsafeRawBufferPointer) -> Void) -> Bool {
    while true {
        let count = recv(fd, scratch.baseAddress, scratch.count, 0)
        if count > 0 {
            feed(UnsafeRawBufferPointer(rebasing: scratch[0..<count]))
            if count < scratch.count { return true }
        } else if count == 0 {
            return false
        } else {
            if errno == EAGAIN || errno == EWOULDBLOCK { return true }
            if errno != EINTR { return false }
        }
    }
}

final class BenchConnection {
    let fd: Int32
    let index: Int
    let peerID: String
    private var decoder = WebSocketDecoder(role: .client, maxMessageBytes: 1 << 20)
    private var output: [UInt8] = []
    var sequence = 0
    var inFlight = 0
    /// `42["send_message",{"to":"<peer>","message":"<index>:` — the fixed start of every message.
    private let messagePrefix: [UInt8]

    /// Connects, upgrades, and joins namespace `/` with `token` (asking for connection state
    /// recovery with `recover`: every event then ends with its offset); blocking, done before
    /// the run.
    init(address: ServerAddress, token: String, index: Int, peerID: String, recover: Bool = false) throws {
        self.index = index
        self.peerID = peerID
        messagePrefix = Array("42[\"send_message\",{\"to\":\"\(peerID)\",\"message\":\"\(index):".utf8)
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address.host, String(address.port), &hints, &list) == 0, let info = list else { throw ClientError("resolve") }
        defer { freeaddrinfo(list) }
        fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            close(fd)
            throw ClientError("connect: \(String(cString: strerror(errno)))")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let handshake = WebSocketClientHandshake()
        write(handshake.request(target: "/socket.io/?EIO=4&transport=websocket", host: address.hostAndPort))
        let fd = self.fd
        do {
            decoder.feed(try handshake.awaitResponse {
                var chunk = [UInt8](repeating: 0, count: 4096)
                while true {
                    let count = recv(fd, &chunk, chunk.count, 0)
                    if count >= 0 { return Array(chunk[0..<count]) }  // 0: the server closed
                    if errno == EINTR { continue }
                    // SO_RCVTIMEO (10 s) ran out, or the connection failed.
                    throw ClientError("no answer to the WebSocket handshake: \(String(cString: strerror(errno)))")
                }
            })
        } catch {
            throw ClientError("\(error)")
        }
        _ = try nextText(blocking: true)  // the Engine.IO open packet
        sendText(Array("40{\"token\":\"\(token)\"\(recover ? ",\"recover\":true" : "")}".utf8))
        write(output)
        output.removeAll()
        while let text = try nextText(blocking: true) {
            if text.starts(with: Array("40".utf8)) { break }
            if text.starts(with: Array("44".utf8)) { throw ClientError("refused: \(String(decoding: text, as: UTF8.self))") }
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    private func nextText(blocking: Bool) throws -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if case .text(let bytes)? = try decoder.next() { return bytes }
            let count = recv(fd, &chunk, chunk.count, 0)
            guard count > 0 else { return nil }
            decoder.feed(chunk[0..<count])
        }
    }

    private func write(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { return }
            offset += count
        }
    }

    func sendText(_ payload: [UInt8]) {
        WebSocketFrameEncoder.appendFrame(.text, payload: payload, maskingKey: (0x12, 0x34, 0x56, 0x78), to: &output)
    }

    /// The cursor of the newest message received and not yet marked read (--read-receipts).
    var unreadCursor: [UInt8]?

    /// Queues `mark_read {with: peer, up_to: <newest received>}` when something arrived since
    /// the last one, as a client showing the conversation does; true when one was queued.
    func queueMarkRead() -> Bool {
        guard let cursor = unreadCursor else { return false }
        unreadCursor = nil
        sendText(Array("42[\"mark_read\",{\"with\":\"\(peerID)\",\"up_to\":\"".utf8) + cursor + Array("\"}]".utf8))
        return true
    }

    /// Queues `typing {to: peer, typing: true}` (what a client repeats while its user types).
    func queueTyping() {
        sendText(Array("42[\"typing\",{\"to\":\"\(peerID)\",\"typing\":true}]".utf8))
    }

    /// Queues `send_message` carrying "<index>:<sequence>:<sent at, ns>" as its text, to the
    /// peer or to `receiver`.
    func queueMessage(now: UInt64, to receiver: String? = nil) {
        sequence += 1
        inFlight += 1
        var payload = receiver.map { Array("42[\"send_message\",{\"to\":\"\($0)\",\"message\":\"\(index):".utf8) } ?? messagePrefix
        payload.reserveCapacity(messagePrefix.count + 32)
        Self.appendDecimal(UInt64(sequence), to: &payload)
        payload.append(UInt8(ascii: ":"))
        Self.appendDecimal(now, to: &payload)
        payload.append(contentsOf: [0x22, 0x7D, 0x5D])  // "}]
        sendText(payload)
    }

    private static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[count] = UInt8(rest % 10) + 0x30
                rest /= 10
                count += 1
            } while rest > 0
            for i in stride(from: count - 1, through: 0, by: -1) { out.append(buffer[i]) }
        }
    }

    /// Writes what is queued; false when the socket is full (the rest waits).
    @discardableResult
    func flush() -> Bool {
        guard !output.isEmpty else { return true }
        let count = output.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if count > 0 { output.removeFirst(count) }
        return output.isEmpty
    }

    var pendingOutput: Int { output.count }

    enum Event {
        case sent(sentAt: UInt64, sequence: Int)
        /// `message_error`: the server refused the message (e.g. "try again" under overload).
        case refused
        case received(sentAt: UInt64)
        /// `messages_read`: a receipt for this user's messages (or from their other device).
        case receipt
    }

    /// Reads what arrived and reports the chat events in it; answers pings.
    func readEvents(_ scratch: UnsafeMutableRawBufferPointer, _ report: (Event) -> Void) -> Bool {
        guard receiveAvailable(fd, scratch, { decoder.feed($0) }) else { return false }
        while let message = try? decoder.next() {
            guard case .text(let bytes) = message else { continue }
            if bytes == [0x32] { sendText([0x33]); continue }  // ping → pong
            guard bytes.count > 20, bytes[0] == 0x34, bytes[1] == 0x32 else { continue }
            // 42["message_sent", 42["message_error", 42["messages_read" or 42["receive_message"
            if bytes[4] == UInt8(ascii: "m"), bytes[11] == UInt8(ascii: "s") { report(.receipt); continue }
            if bytes[4] == UInt8(ascii: "m") {
                inFlight -= 1
                if bytes[12] == UInt8(ascii: "e") { report(.refused); continue }
            }
            guard let (sequence, sentAt) = Self.sequenceAndSentAt(bytes) else { continue }
            if trackUnread, bytes[4] == UInt8(ascii: "r") { unreadCursor = Self.cursor(in: bytes) ?? unreadCursor }
            report(bytes[4] == UInt8(ascii: "m") ? .sent(sentAt: sentAt, sequence: sequence) : .received(sentAt: sentAt))
        }
        return true
    }

    /// Remember the newest received message's cursor (--read-receipts).
    var trackUnread = false

    private static let cursorKey: [UInt8] = Array("\"cursor\":\"".utf8)

    /// The value of the last `"cursor":"…"` member of a packet.
    static func cursor(in bytes: [UInt8]) -> [UInt8]? {
        let key = cursorKey
        var index = bytes.count - key.count
        while index >= 0 {
            if bytes[index] == key[0], Array(bytes[index..<index + key.count]) == key {
                let start = index + key.count
                guard let end = bytes[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                return Array(bytes[start..<end])
            }
            index -= 1
        }
        return nil
    }

    private static let messageKey: [UInt8] = Array("\"message\":\"".utf8)

    /// The sequence and the ns timestamp of the "message" string "<index>:<sequence>:<ns>".
    static func sequenceAndSentAt(_ bytes: [UInt8]) -> (sequence: Int, sentAt: UInt64)? {
        guard let fields = messageFields(bytes) else { return nil }
        return (Int(fields.sequence), fields.sentAt)
    }

    /// The three numbers of the "message" string "<index>:<sequence>:<ns>" in a packet.
    static func messageFields(_ bytes: [UInt8]) -> (index: UInt64, sequence: UInt64, sentAt: UInt64)? {
        bytes.withUnsafeBufferPointer { buffer -> (index: UInt64, sequence: UInt64, sentAt: UInt64)? in
            // "message":"<index>:<sequence>:<ns>" — find the key by its 10 bytes, then skip two colons.
            let key = messageKey
            var index = 0
            let count = buffer.count
            search: while index + key.count <= count {
                for k in 0..<key.count where buffer[index + k] != key[k] { index += 1; continue search }
                break
            }
            guard index + key.count <= count else { return nil }
            index += key.count
            var numbers: (UInt64, UInt64, UInt64) = (0, 0, 0)
            for field in 0..<3 {
                var value: UInt64 = 0
                let first = index
                while index < count, buffer[index] >= 0x30, buffer[index] <= 0x39 {
                    value = value * 10 + UInt64(buffer[index] - 0x30)
                    index += 1
                }
                guard index > first else { return nil }
                switch field {
                case 0: numbers.0 = value
                case 1: numbers.1 = value
                default: numbers.2 = value
                }
                if field < 2 {
                    guard index < count, buffer[index] == 0x3A else { return nil }
                    index += 1
                }
            }
            return (numbers.0, numbers.1, numbers.2)
        }
    }
}
