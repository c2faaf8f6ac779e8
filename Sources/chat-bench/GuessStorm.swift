import CLinux
import Foundation
import ServerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// `--guessers N`: a password-guessing storm beside the load. N threads post wrong passwords to
/// `POST /api/auth/login` as fast as the answers come, over kept-alive connections, each from a
/// loopback address of its own (127.0.0.2, .3 …), so the limits per address that stop each
/// guesser do not touch the honest logins, which come from 127.0.0.1. `--guess-accounts one`
/// aims every guess at one account (no honest login uses it); `many` at a new email each time.
/// Counted from the start of the measured time: guesses answered per second, by status.
final class GuessStorm: @unchecked Sendable {
    private let lock = NSLock()
    private var statuses: [Int: Int] = [:]
    private var measuredFrom: [Int: Int] = [:]
    private var stopped = false

    init(threads: Int, port: Int, oneAccount: Bool) {
        for thread in 0..<threads {
            Thread.detachNewThread { [self] in run(thread: thread, port: port, oneAccount: oneAccount) }
        }
    }

    /// Starts the measured time: what was answered before is left out.
    func startMeasuring() {
        lock.lock()
        measuredFrom = statuses
        lock.unlock()
    }

    /// Stops the threads; answers by status during the measured time.
    func stop() -> [Int: Int] {
        lock.lock()
        defer { lock.unlock() }
        stopped = true
        return statuses.mapValues { $0 }.merging(measuredFrom.mapValues { -$0 }, uniquingKeysWith: +)
    }

    private var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    private func run(thread: Int, port: Int, oneAccount: Bool) {
        var sequence = 0
        var fd: Int32 = -1
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while !isStopped {
            if fd < 0 {
                fd = Self.connect(from: "127.0.0.\(2 + thread % 250)", port: port)
                if fd < 0 { usleep(10_000); continue }
            }
            sequence += 1
            let email = oneAccount ? "storm-victim@bench.chat" : "guess-\(thread)-\(sequence)@bench.chat"
            let body = #"{"email":"\#(email)","password":"wrong guess \#(sequence)"}"#
            let request = Array("POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
            guard request.withUnsafeBytes({ Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count,
                  let status = Self.readResponse(fd, &buffer) else {
                close(fd)
                fd = -1
                continue
            }
            lock.lock()
            statuses[status, default: 0] += 1
            lock.unlock()
        }
        if fd >= 0 { close(fd) }
    }

    private static func connect(from source: String, port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, source, &local.sin_addr)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, connected == 0 else {
            close(fd)
            return -1
        }
        return fd
    }

    /// One response's status, its head and `Content-Length` body read whole; nil when the
    /// connection ends or the answer is not one this reader understands.
    private static func readResponse(_ fd: Int32, _ buffer: inout [UInt8]) -> Int? {
        var filled = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + filled, $0.count - filled, 0) }
            guard count > 0 else { return nil }
            filled += count
            let text = String(decoding: buffer[..<filled], as: UTF8.self)
            guard let headEnd = text.range(of: "\r\n\r\n") else {
                if filled == buffer.count { return nil }
                continue
            }
            let head = text[..<headEnd.lowerBound]
            let parts = head.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
            let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            let total = text.utf8.distance(from: text.utf8.startIndex, to: headEnd.upperBound) + length
            if filled >= total { return status }
            if total > buffer.count { return nil }
        }
    }
}
