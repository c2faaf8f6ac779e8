/// Why a request cannot be served; the connection answers `status` and closes.
struct HTTPParseError: Error, Equatable {
    let status: Int
    let message: String
}

/// An incremental HTTP/1.x request parser. Feed it the unconsumed bytes of a connection,
/// as many times as they grow; it remembers how far it has looked, so bytes arriving one at
/// a time cost no rescans. It tells "need more bytes" from "bad input" at the first byte that
/// proves the input bad, and never buffers past its limits.
public struct HTTPRequestParser {
    public struct Limits: Sendable {
        public var maxHeaderBytes = 16_384
        public var maxBodyBytes = 1_048_576
        public var maxHeaderCount = 100

        public init() {}
    }

    enum Event: Equatable {
        case needMore
        /// A whole request; `consumed` bytes of the input belong to it.
        case request(consumed: Int)
    }

    private enum BodyFraming {
        case length(Int)
        case chunked
    }

    private enum ChunkPhase {
        case sizeLine
        case data(remaining: Int)
        case dataEnd
        case trailers
    }

    let limits: Limits
    private var scanOffset = 0
    private var requestLineChecked = false
    private var head: (request: HTTPRequest, length: Int, framing: BodyFraming)?
    private var chunkPosition = 0
    private var chunkPhase = ChunkPhase.sizeLine
    private var chunkedBody: [UInt8] = []
    /// Set once a head asking `Expect: 100-continue` is parsed and its body has not all come.
    private(set) var expectsContinue = false
    /// The last complete request.
    private(set) var request: HTTPRequest?

    init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Forgets the last request, ready for the next one.
    mutating func reset() {
        self = HTTPRequestParser(limits: limits)
    }

    /// True while nothing of a request has been seen past optional blank lines.
    var isIdle: Bool { head == nil && scanOffset == 0 }

    /// True once the head of the request being read is complete (its body is still coming).
    var hasHead: Bool { head != nil }

    mutating func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(HTTPParseError) -> Event {
        if head == nil {
            guard let headEnd = try findHeadEnd(bytes) else { return .needMore }
            head = try parseHead(UnsafeBufferPointer(rebasing: bytes[..<headEnd]), length: headEnd)
            if let head, head.request.header("expect")?.lowercased() == "100-continue" {
                expectsContinue = true
            }
            chunkPosition = headEnd
        }
        guard let (request, headLength, framing) = head else { return .needMore }
        switch framing {
        case .length(let length):
            guard bytes.count - headLength >= length else { return .needMore }
            var complete = request
            complete.body = Array(bytes[headLength..<(headLength + length)])
            return finish(complete, consumed: headLength + length)
        case .chunked:
            guard let consumed = try decodeChunks(bytes) else { return .needMore }
            var complete = request
            complete.body = chunkedBody
            return finish(complete, consumed: consumed)
        }
    }

    private mutating func finish(_ complete: HTTPRequest, consumed: Int) -> Event {
        reset()
        request = complete
        return .request(consumed: consumed)
    }

    // MARK: - Head

    /// The index just past the blank line ending the head, or nil when it has not arrived.
    private mutating func findHeadEnd(_ bytes: UnsafeBufferPointer<UInt8>) throws(HTTPParseError) -> Int? {
        // Nothing past the limit is looked at (one byte past it proves the head too large):
        // the verdict is the same whether the bytes came at once or one at a time. Blank lines
        // before the request line (skipped, RFC 9112 §2.2) count towards it too.
        let scanEnd = min(bytes.count, limits.maxHeaderBytes + 1)
        var start = 0
        while start < scanEnd, bytes[start] == 0x0D || bytes[start] == 0x0A { start += 1 }
        try checkMethodPrefix(UnsafeBufferPointer(rebasing: bytes[..<scanEnd]), from: start)
        var index = max(scanOffset, start)
        while index < scanEnd {
            if bytes[index] == 0x0A {
                if !requestLineChecked {
                    // Judge the request line as soon as it is whole, not when the head is.
                    let end = index > start && bytes[index - 1] == 0x0D ? index - 1 : index
                    _ = try parseRequestLine(UnsafeBufferPointer(rebasing: bytes[start..<end]))
                    requestLineChecked = true
                }
                if index + 1 >= scanEnd { break }
                if bytes[index + 1] == 0x0A { return try checkedHeadEnd(index + 2) }
                if bytes[index + 1] == 0x0D {
                    if index + 2 >= scanEnd { break }
                    if bytes[index + 2] == 0x0A { return try checkedHeadEnd(index + 3) }
                }
            }
            index += 1
        }
        scanOffset = index
        if bytes.count > limits.maxHeaderBytes { throw HTTPParseError(status: 431, message: "Request headers too large") }
        return nil
    }

    private func checkedHeadEnd(_ end: Int) throws(HTTPParseError) -> Int {
        guard end <= limits.maxHeaderBytes else { throw HTTPParseError(status: 431, message: "Request headers too large") }
        return end
    }

    /// Refuses at once input that cannot begin a request line, rather than waiting for 16 KiB of it.
    private func checkMethodPrefix(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) throws(HTTPParseError) {
        var index = start
        while index < bytes.count, index - start <= 32 {
            let byte = bytes[index]
            if byte == UInt8(ascii: " ") {
                if index == start { break }
                return
            }
            guard Self.isTokenByte(byte) else { break }
            index += 1
        }
        if index < bytes.count || index - start > 32 { throw HTTPParseError(status: 400, message: "Malformed request line") }
    }

    private func parseHead(_ head: UnsafeBufferPointer<UInt8>, length: Int) throws(HTTPParseError) -> (HTTPRequest, Int, BodyFraming) {
        var lines: [UnsafeBufferPointer<UInt8>] = []
        var lineStart = 0
        for index in 0..<head.count where head[index] == 0x0A {
            var lineEnd = index
            if lineEnd > lineStart, head[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            lines.append(UnsafeBufferPointer(rebasing: head[lineStart..<lineEnd]))
            lineStart = index + 1
        }
        guard let requestLineIndex = lines.firstIndex(where: { !$0.isEmpty }) else {
            throw HTTPParseError(status: 400, message: "Malformed request line")
        }
        var request = try parseRequestLine(lines[requestLineIndex])
        for line in lines[(requestLineIndex + 1)...] where !line.isEmpty {
            guard request.headers.count < limits.maxHeaderCount else { throw HTTPParseError(status: 431, message: "Too many request headers") }
            request.headers.append(try parseHeaderLine(line))
        }
        return (request, length, try framing(of: request))
    }

    private func parseRequestLine(_ line: UnsafeBufferPointer<UInt8>) throws(HTTPParseError) -> HTTPRequest {
        let malformed = HTTPParseError(status: 400, message: "Malformed request line")
        let parts = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else { throw malformed }
        guard parts[0].allSatisfy(Self.isTokenByte) else { throw malformed }
        guard parts[1].allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { throw malformed }
        let version = parts[2]
        guard version.count == 8, version.starts(with: "HTTP/".utf8), version[version.startIndex + 6] == UInt8(ascii: "."),
              let major = Self.digit(version[version.startIndex + 5]), let minor = Self.digit(version[version.startIndex + 7])
        else { throw malformed }
        guard major == 1, minor <= 1 else { throw HTTPParseError(status: 505, message: "HTTP version not supported") }
        let method = String(decoding: parts[0], as: UTF8.self)
        var target = String(decoding: parts[1], as: UTF8.self)
        if target.hasPrefix("http://") || target.hasPrefix("https://") {
            // Absolute form: keep the path and query.
            let afterScheme = target[target.firstRange(of: "://")!.upperBound...]
            target = afterScheme.firstIndex(of: "/").map { String(afterScheme[$0...]) } ?? "/"
        } else if !(target.hasPrefix("/") || (target == "*" && method == "OPTIONS")) {
            throw malformed
        }
        return HTTPRequest(method: method, target: target, minorVersion: minor, headers: [], body: [])
    }

    private func parseHeaderLine(_ line: UnsafeBufferPointer<UInt8>) throws(HTTPParseError) -> (name: String, value: String) {
        let malformed = HTTPParseError(status: 400, message: "Malformed header")
        guard let first = line.first, first != UInt8(ascii: " "), first != UInt8(ascii: "\t") else {
            throw HTTPParseError(status: 400, message: "Folded headers are not accepted")
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { throw malformed }
        let name = line[..<colon]
        guard name.allSatisfy(Self.isTokenByte) else { throw malformed }
        var valueStart = colon + 1
        var valueEnd = line.count
        while valueStart < valueEnd, line[valueStart] == 0x20 || line[valueStart] == 0x09 { valueStart += 1 }
        while valueEnd > valueStart, line[valueEnd - 1] == 0x20 || line[valueEnd - 1] == 0x09 { valueEnd -= 1 }
        let value = line[valueStart..<valueEnd]
        guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { throw malformed }
        let lowerName = String(decoding: name.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 32 : $0 }, as: UTF8.self)
        return (lowerName, String(decoding: value, as: UTF8.self))
    }

    private func framing(of request: HTTPRequest) throws(HTTPParseError) -> BodyFraming {
        let transferEncodings = request.headers.filter { $0.name == "transfer-encoding" }
        let contentLengths = request.headers.filter { $0.name == "content-length" }
        if !transferEncodings.isEmpty {
            guard request.minorVersion == 1 else { throw HTTPParseError(status: 400, message: "Transfer-Encoding requires HTTP/1.1") }
            guard contentLengths.isEmpty else {
                throw HTTPParseError(status: 400, message: "Both Transfer-Encoding and Content-Length given")
            }
            let codings = transferEncodings.flatMap { $0.value.lowercased().split(separator: ",").map { $0.trimmingSpaces() } }
            guard codings == ["chunked"] else { throw HTTPParseError(status: 501, message: "Transfer-Encoding not supported") }
            return .chunked
        }
        guard !contentLengths.isEmpty else { return .length(0) }
        let values = contentLengths.flatMap { $0.value.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingSpaces() } }
        guard let first = values.first, values.allSatisfy({ $0 == first }), !first.isEmpty, first.utf8.count <= 18,
              first.utf8.allSatisfy({ Self.digit($0) != nil }), let length = Int(first)
        else { throw HTTPParseError(status: 400, message: "Invalid Content-Length") }
        guard length <= limits.maxBodyBytes else { throw HTTPParseError(status: 413, message: "Request body too large") }
        return .length(length)
    }

    // MARK: - Chunked bodies

    /// Decodes from where it stopped last time; returns the bytes consumed when the last
    /// chunk and trailers are in.
    private mutating func decodeChunks(_ bytes: UnsafeBufferPointer<UInt8>) throws(HTTPParseError) -> Int? {
        let malformed = HTTPParseError(status: 400, message: "Malformed chunked body")
        while true {
            switch chunkPhase {
            case .sizeLine:
                guard let lineEnd = Self.lineEnd(bytes, from: chunkPosition, within: 1024) else {
                    if bytes.count - chunkPosition > 1024 { throw malformed }
                    return nil
                }
                var line = UnsafeBufferPointer(rebasing: bytes[chunkPosition..<lineEnd.contentEnd])
                if let semicolon = line.firstIndex(of: UInt8(ascii: ";")) { line = UnsafeBufferPointer(rebasing: line[..<semicolon]) }
                var size = 0
                var digits = 0
                for byte in line {
                    if byte == 0x20 || byte == 0x09 { continue }
                    guard let value = Self.hexDigit(byte), digits < 8 else { throw malformed }
                    size = size << 4 | value
                    digits += 1
                }
                guard digits > 0 else { throw malformed }
                guard chunkedBody.count + size <= limits.maxBodyBytes else {
                    throw HTTPParseError(status: 413, message: "Request body too large")
                }
                chunkPosition = lineEnd.next
                chunkPhase = size == 0 ? .trailers : .data(remaining: size)
            case .data(let remaining):
                let available = min(remaining, bytes.count - chunkPosition)
                chunkedBody.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[chunkPosition..<(chunkPosition + available)]))
                chunkPosition += available
                if available < remaining {
                    chunkPhase = .data(remaining: remaining - available)
                    return nil
                }
                chunkPhase = .dataEnd
            case .dataEnd:
                guard let lineEnd = Self.lineEnd(bytes, from: chunkPosition) else {
                    if bytes.count - chunkPosition >= 2 { throw malformed }
                    return nil
                }
                guard lineEnd.contentEnd == chunkPosition else { throw malformed }
                chunkPosition = lineEnd.next
                chunkPhase = .sizeLine
            case .trailers:
                guard let lineEnd = Self.lineEnd(bytes, from: chunkPosition, within: limits.maxHeaderBytes) else {
                    if bytes.count - chunkPosition > limits.maxHeaderBytes { throw HTTPParseError(status: 431, message: "Trailers too large") }
                    return nil
                }
                let empty = lineEnd.contentEnd == chunkPosition
                chunkPosition = lineEnd.next
                if empty { return chunkPosition }
            }
        }
    }

    /// The end of the line starting at `start`, looking no further than `maxLength` bytes past
    /// it: a longer line gets the same answer whether it came at once or a byte at a time.
    private static func lineEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, within maxLength: Int = .max) -> (contentEnd: Int, next: Int)? {
        var index = start
        let end = bytes.count - start > maxLength ? start + maxLength + 1 : bytes.count
        while index < end {
            if bytes[index] == 0x0A {
                let contentEnd = index > start && bytes[index - 1] == 0x0D ? index - 1 : index
                return (contentEnd, index + 1)
            }
            index += 1
        }
        return nil
    }

    // MARK: - Bytes

    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    static func digit(_ byte: UInt8) -> Int? {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") ? Int(byte - UInt8(ascii: "0")) : nil
    }

    static func hexDigit(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(byte - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(byte - UInt8(ascii: "A")) + 10
        default: return nil
        }
    }
}
