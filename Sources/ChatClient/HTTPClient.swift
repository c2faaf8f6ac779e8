import Foundation

/// A server address: `http://host:port` (TLS belongs to a proxy in front).
public struct ServerAddress: Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(_ url: String) throws {
        var rest = Substring(url)
        if rest.hasPrefix("http://") { rest = rest.dropFirst(7) }
        else if rest.hasPrefix("ws://") { rest = rest.dropFirst(5) }
        else if rest.hasPrefix("https://") || rest.hasPrefix("wss://") {
            throw ClientError("\(url): TLS is not built in; use http:// (behind a TLS proxy if needed)")
        } else if rest.contains("://") {
            throw ClientError("\(url): the server URL must start with http://")
        }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            port = after.hasPrefix(":") ? Int(after.dropFirst()) ?? -1 : 80
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            port = Int(rest[rest.index(after: colon)...]) ?? -1
        } else {
            host = String(rest)
            port = 80
        }
        guard !host.isEmpty, (1...65535).contains(port) else { throw ClientError("\(url): not a valid server URL") }
    }

    public var description: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)" }
}

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
        var head = "\(method) \(target) HTTP/1.1\r\nHost: \(address.host):\(address.port)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        try socket.write(Array((head + "\r\n").utf8) + (body ?? []))
        let response = try readResponse(socket, timeout: timeout, headOnly: method == "HEAD")
        if response.headers["connection"]?.lowercased() == "close" { self.socket = nil; buffer = [] }
        return response
    }

    private func fill(_ socket: ClientSocket, deadline: Date) throws {
        let chunk = try socket.read(timeout: deadline.timeIntervalSinceNow)
        guard !chunk.isEmpty else { throw ClientError("the server closed the connection") }
        buffer += chunk
    }

    private func readResponse(_ socket: ClientSocket, timeout: TimeInterval, headOnly: Bool) throws -> HTTPClientResponse {
        let deadline = Date().addingTimeInterval(timeout)
        var headEnd: Int?
        while headEnd == nil {
            headEnd = buffer.indices.dropLast(3).first { buffer[$0] == 13 && buffer[$0 + 1] == 10 && buffer[$0 + 2] == 13 && buffer[$0 + 3] == 10 }
            if headEnd == nil { try fill(socket, deadline: deadline) }
        }
        let head = String(decoding: buffer[..<headEnd!], as: UTF8.self).components(separatedBy: "\r\n")
        buffer.removeFirst(headEnd! + 4)
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw ClientError("not an HTTP response") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        if headOnly || status == 204 || status == 304 || (100..<200).contains(status) {
            return HTTPClientResponse(status: status, headers: headers, body: [])
        }
        var body: [UInt8] = []
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            while true {
                var lineEnd: Int?
                while lineEnd == nil {
                    lineEnd = buffer.indices.dropLast().first { buffer[$0] == 13 && buffer[$0 + 1] == 10 }
                    if lineEnd == nil { try fill(socket, deadline: deadline) }
                }
                let sizeText = String(decoding: buffer[..<lineEnd!], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { throw ClientError("bad chunked response") }
                buffer.removeFirst(lineEnd! + 2)
                while buffer.count < size + 2 { try fill(socket, deadline: deadline) }
                body += buffer[..<size]
                buffer.removeFirst(size + 2)
                if size == 0 { break }
            }
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            while buffer.count < length { try fill(socket, deadline: deadline) }
            body = Array(buffer[..<length])
            buffer.removeFirst(length)
        } else {
            while let chunk = try? socket.read(timeout: deadline.timeIntervalSinceNow), !chunk.isEmpty { buffer += chunk }
            body = buffer
            buffer = []
            self.socket = nil
        }
        return HTTPClientResponse(status: status, headers: headers, body: body)
    }
}
