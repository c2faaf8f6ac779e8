import Foundation
import JSON

/// A parsed HTTP response.
struct TestResponse {
    let status: Int
    let headers: [String: String]
    let body: [UInt8]

    var json: JSONValue? { try? JSONParser.parse(body) }
    var text: String { String(decoding: body, as: UTF8.self) }
    func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// A blocking TCP connection to the server under test, for exact bytes: garbage, slow
/// clients, pipelining. Every read has a time-out, so a test can never hang.
final class RawConnection {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw ServerProcess.Failure(description: "connect to port \(port) failed: errno \(errno)")
        }
    }

    deinit { close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }

    /// Half-closes: the server sees end of input but can still answer.
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { return }
            offset += count
        }
    }

    /// Reads until the peer closes or `timeout` passes; returns the bytes and whether it closed.
    func receiveUntilClosed(timeout: TimeInterval = 10) -> (bytes: [UInt8], closed: Bool) {
        var bytes: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard let chunk = receive(timeout: deadline.timeIntervalSinceNow) else { return (bytes, false) }
            if chunk.isEmpty { return (bytes, true) }
            bytes += chunk
        }
        return (bytes, false)
    }

    /// Reads until `count` complete responses have arrived (or the time-out).
    func receiveResponses(_ count: Int, timeout: TimeInterval = 10) -> [TestResponse] {
        var buffer: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let responses = TestResponseParser.parseAll(buffer)
            if responses.count >= count { return responses }
            guard let chunk = receive(timeout: deadline.timeIntervalSinceNow), !chunk.isEmpty else { break }
            buffer += chunk
        }
        return TestResponseParser.parseAll(buffer)
    }

    /// One read: nil on time-out, empty on EOF (or reset).
    func receive(timeout: TimeInterval) -> [UInt8]? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(max(0, timeout) * 1000)) > 0 else { return nil }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = recv(fd, &chunk, chunk.count, 0)
        return count > 0 ? Array(chunk[0..<count]) : []
    }
}

enum TestResponseParser {
    /// Every complete response at the start of `bytes` (Content-Length framing).
    static func parseAll(_ bytes: [UInt8], headRequest: Bool = false) -> [TestResponse] {
        var responses: [TestResponse] = []
        var rest = bytes[...]
        while let response = parseOne(&rest, headRequest: headRequest) { responses.append(response) }
        return responses
    }

    private static func parseOne(_ bytes: inout ArraySlice<UInt8>, headRequest: Bool) -> TestResponse? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = bytes.indices.first(where: { bytes[$0...].starts(with: separator) }) else { return nil }
        let head = String(decoding: bytes[bytes.startIndex..<headEnd], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = headRequest || (100..<200).contains(status) || status == 204 ? 0 : Int(headers["content-length"] ?? "0") ?? 0
        let bodyStart = headEnd + 4
        guard bytes.endIndex - bodyStart >= length else { return nil }
        let body = Array(bytes[bodyStart..<(bodyStart + length)])
        bytes = bytes[(bodyStart + length)...]
        return TestResponse(status: status, headers: headers, body: body)
    }
}

/// One request on a new connection.
struct HTTPTestClient {
    let port: Int

    func request(_ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8]? = nil) throws -> TestResponse {
        let connection = try RawConnection(port: port)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        connection.send(Array((head + "\r\n").utf8) + (body ?? []))
        let (bytes, _) = connection.receiveUntilClosed(timeout: 15)
        guard let response = TestResponseParser.parseAll(bytes, headRequest: method == "HEAD").first else {
            throw ServerProcess.Failure(description: "no HTTP response to \(method) \(path); got \(bytes.count) bytes")
        }
        return response
    }

    func get(_ path: String, token: String? = nil) throws -> TestResponse {
        try request("GET", path, headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:])
    }

    func postJSON(_ path: String, _ value: JSONValue) throws -> TestResponse {
        try request("POST", path, headers: ["Content-Type": "application/json"], body: JSONWriter.bytes(value))
    }
}
