import Foundation
import ServerRuntime

struct HTTPClientResponse {
    let status: Int
    let headers: [String: String]
    let body: [UInt8]
}

/// HTTP/1.1 requests over one kept-alive connection (reopened when the server closes it).
final class HTTPClient: @unchecked Sendable {
    let address: ServerAddress
    private var socket: ClientSocket?
    private var buffer: [UInt8] = []
    private let lock = NSLock()

    init(address: ServerAddress) {
        self.address = address
    }

    func request(_ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
                 timeout: TimeInterval = 30) throws -> HTTPClientResponse {
        lock.lock()
        defer { lock.unlock() }
        // A kept-alive connection the server has meanwhile closed fails at once: retry on a new one.
        let reused = socket != nil
        do {
            return try send(method, target, headers: headers, body: body, timeout: timeout)
        } catch {
            socket = nil
            buffer = []
            guard reused else { throw error }
            return try send(method, target, headers: headers, body: body, timeout: timeout)
        }
    }

    func close() {
        lock.lock()
        socket?.shutdown()
        socket = nil
        lock.unlock()
    }

    /// Aborts a request blocked in another thread.
    func abort() { socket?.shutdown() }

    private func send(_ method: String, _ target: String, headers: [(String, String)], body: [UInt8]?, timeout: TimeInterval) throws -> HTTPClientResponse {
        if socket == nil { socket = try ClientSocket(host: address.host, port: address.port) }
        guard let socket else { throw ClientError("no connection") }
        var head = "\(method) \(target) HTTP/1.1\r\nHost: \(address.hostAndPort)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        try socket.write(Array((head + "\r\n").utf8) + (body ?? []))
        let response = try readResponse(socket, timeout: timeout, headOnly: method == "HEAD")
        if response.headers["connection"]?.lowercased() == "close" { self.socket = nil; buffer = [] }
        return response
    }

    /// Seconds from now to `deadline` (milliseconds on the monotonic clock).
    private static func remaining(_ deadline: Int64) -> TimeInterval {
        Double(deadline - MonotonicClock.milliseconds()) / 1000
    }

    private func fill(_ socket: ClientSocket, deadline: Int64) throws {
        let chunk = try socket.read(timeout: Self.remaining(deadline))
        guard !chunk.isEmpty else { throw ClientError("the server closed the connection") }
        buffer += chunk
    }

    private func readResponse(_ socket: ClientSocket, timeout: TimeInterval, headOnly: Bool) throws -> HTTPClientResponse {
        let deadline = MonotonicClock.milliseconds() + Int64(timeout * 1000)
        var parsed: (head: HTTPResponseHead, length: Int)?
        while parsed == nil {
            parsed = try HTTPResponseHead.parse(buffer)
            if parsed == nil { try fill(socket, deadline: deadline) }
        }
        let head = parsed!.head
        buffer.removeFirst(parsed!.length)
        func response(_ body: [UInt8]) -> HTTPClientResponse { HTTPClientResponse(status: head.status, headers: head.headers, body: body) }
        switch head.bodyFraming(headOnly: headOnly) {
        case .none:
            return response([])
        case .length(let length):
            while buffer.count < length { try fill(socket, deadline: deadline) }
            defer { buffer.removeFirst(length) }
            return response(Array(buffer[..<length]))
        case .chunked:
            while true {
                if let (body, consumed) = try ChunkedBody.decode(buffer) {
                    buffer.removeFirst(consumed)
                    return response(body)
                }
                try fill(socket, deadline: deadline)
            }
        case .untilClose:
            while let chunk = try? socket.read(timeout: Self.remaining(deadline)), !chunk.isEmpty { buffer += chunk }
            defer { buffer = []; self.socket = nil }
            return response(buffer)
        }
    }
}

/// The status line and headers of an HTTP/1.1 response (header names lower-cased).
struct HTTPResponseHead: Equatable {
    enum BodyFraming: Equatable {
        case none
        case length(Int)
        case chunked
        /// No length given: the body is what comes until the server closes.
        case untilClose
    }

    let status: Int
    let headers: [String: String]

    /// The head at the start of `bytes` and its length with the blank line, or nil while the
    /// blank line has not arrived.
    static func parse(_ bytes: [UInt8]) throws(ClientError) -> (head: HTTPResponseHead, length: Int)? {
        guard bytes.count >= 4, let end = (0...(bytes.count - 4)).first(where: {
            bytes[$0] == 13 && bytes[$0 + 1] == 10 && bytes[$0 + 2] == 13 && bytes[$0 + 3] == 10
        }) else { return nil }
        let lines = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ", maxSplits: 2)
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), statusParts[1].count == 3, let status = Int(statusParts[1]) else {
            throw ClientError("not an HTTP response: \(lines[0].prefix(80))")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw ClientError("malformed response header: \(line.prefix(80))") }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (HTTPResponseHead(status: status, headers: headers), end + 4)
    }

    /// How the body is delimited (RFC 9112 §6.3); a HEAD request's answer has none.
    func bodyFraming(headOnly: Bool) -> BodyFraming {
        if headOnly || status == 204 || status == 304 || (100..<200).contains(status) { return .none }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true { return .chunked }
        if let length = headers["content-length"].flatMap({ Int($0) }) { return .length(length) }
        return .untilClose
    }
}

/// A chunked body (RFC 9112 §7.1).
enum ChunkedBody {
    /// The body at the start of `bytes` and the bytes it took, or nil while it is incomplete.
    static func decode(_ bytes: [UInt8]) throws(ClientError) -> (body: [UInt8], consumed: Int)? {
        var body: [UInt8] = []
        var position = 0
        while true {
            guard let lineEnd = (position..<max(position, bytes.count - 1)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }) else {
                return nil
            }
            let sizeText = String(decoding: bytes[position..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw ClientError("bad chunk size in the response: \(sizeText.prefix(20))")
            }
            position = lineEnd + 2
            if size == 0 {
                // Trailers, if any, end with a blank line; the usual answer has none.
                guard bytes.count >= position + 2 else { return nil }
                guard bytes[position] == 13, bytes[position + 1] == 10 else { throw ClientError("trailers in a chunked response are not supported") }
                return (body, position + 2)
            }
            guard bytes.count >= position + size + 2 else { return nil }
            guard bytes[position + size] == 13, bytes[position + size + 1] == 10 else { throw ClientError("a chunk does not end with CRLF") }
            body += bytes[position..<(position + size)]
            position += size + 2
        }
    }
}
