// The HTTP/1.1 request parser (Sources/HTTPServer/HTTPRequestParser.swift), fed as
// HTTPConnection feeds it: the unconsumed bytes, again each time more arrive. Invariants:
// - it never consumes more than it was given, nor nothing;
// - every request it returns is sane: a token method, a target in origin form (or `*`), HTTP/1.0
//   or 1.1, lower-case token header names, values without control bytes, no more headers and
//   no larger a body than the limits allow, a body as long as its Content-Length says;
// - the input whole, one byte at a time, and in random pieces give the same requests and the
//   same error (calling it again with no new byte changes nothing);
// - a request written out again (request line, its headers, its body with Content-Length)
//   parses to the same request.
// Each input runs against the default limits and against small ones, so every limit is crossed.
import FuzzSupport
@testable import HTTPServer

struct Parsed: Equatable {
    var method: String
    var target: String
    var minorVersion: Int
    var headers: [String]
    var body: [UInt8]
    var consumed: Int

    init(_ request: HTTPRequest, consumed: Int) {
        method = request.method
        target = request.target
        minorVersion = request.minorVersion
        headers = request.headers.map { $0.name + "\u{0}" + $0.value }
        body = request.body
        self.consumed = consumed
    }
}

struct Outcome: Equatable {
    var requests: [Parsed] = []
    var error: HTTPParseError?
}

let smallLimits: HTTPRequestParser.Limits = {
    var limits = HTTPRequestParser.Limits()
    limits.maxHeaderBytes = 200
    limits.maxBodyBytes = 40
    limits.maxHeaderCount = 4
    return limits
}()

func isToken(_ text: String) -> Bool { !text.isEmpty && text.utf8.allSatisfy(HTTPRequestParser.isTokenByte) }

func checkSane(_ request: HTTPRequest, consumed: Int, limits: HTTPRequestParser.Limits) {
    require(isToken(request.method), "method \(request.method.debugDescription)")
    // (Bytes, not Characters: "/" and a combining mark after it are one Character.)
    require(request.target.utf8.first == UInt8(ascii: "/") || (request.target == "*" && request.method == "OPTIONS"),
            "target \(request.target.debugDescription)")
    require(!request.target.unicodeScalars.contains { $0.value <= 0x20 || $0.value == 0x7F }, "target with a space or control")
    require(request.minorVersion == 0 || request.minorVersion == 1, "version 1.\(request.minorVersion)")
    require(request.headers.count <= limits.maxHeaderCount, "\(request.headers.count) headers")
    require(request.body.count <= limits.maxBodyBytes, "body of \(request.body.count) bytes")
    require(consumed >= request.body.count, "consumed \(consumed) for a body of \(request.body.count)")
    for (name, value) in request.headers {
        require(isToken(name) && name == name.lowercased(), "header name \(name.debugDescription)")
        require(!value.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7F }, "header value \(value.debugDescription)")
        let blank: Set<UInt8> = [0x20, 0x09]
        require(!(value.utf8.first.map(blank.contains) ?? false) && !(value.utf8.last.map(blank.contains) ?? false), "untrimmed value \(value.debugDescription)")
    }
    if let length = request.header("content-length") {
        let first = length.split(separator: ",").first.map { $0.trimmingSpaces() } ?? ""
        require(Int(first) == request.body.count, "Content-Length \(length) for a body of \(request.body.count)")
    }
}

/// Feeds `input` in `pieces`; after each piece, parses until the parser needs more.
func run(_ input: [UInt8], pieces: [Range<Int>], limits: HTTPRequestParser.Limits, repeatNeedMore: Bool = false) -> Outcome {
    var parser = HTTPRequestParser(limits: limits)
    var buffer: [UInt8] = []
    var outcome = Outcome()
    for piece in pieces {
        buffer.append(contentsOf: input[piece])
        while true {
            do {
                var event = try buffer.withUnsafeBufferPointer { bytes throws(HTTPParseError) in try parser.parse(bytes) }
                if repeatNeedMore, event == .needMore {
                    event = try buffer.withUnsafeBufferPointer { bytes throws(HTTPParseError) in try parser.parse(bytes) }
                    require(event == .needMore, "a second call with no new byte found a request")
                }
                guard case .request(let consumed) = event else { break }
                require(consumed > 0 && consumed <= buffer.count, "consumed \(consumed) of \(buffer.count) bytes")
                guard let request = parser.request else { fail("a request event without a request") }
                require(parser.isIdle && !parser.hasHead && !parser.expectsContinue, "parser not idle after a request")
                checkSane(request, consumed: consumed, limits: limits)
                outcome.requests.append(Parsed(request, consumed: consumed))
                parser.reset()
                buffer.removeFirst(consumed)
            } catch {
                outcome.error = error
                require((400...599).contains(error.status) && !error.message.isEmpty, "error \(error)")
                return outcome
            }
        }
    }
    return outcome
}

/// The request as a client could have sent it: request line, headers (the framing ones
/// replaced by one Content-Length), body; bare LF line ends, so it is never longer than what
/// was parsed unless a byte became U+FFFD.
func rewrite(_ request: HTTPRequest) -> [UInt8] {
    var out = Array("\(request.method) \(request.target) HTTP/1.\(request.minorVersion)\n".utf8)
    var framed = false
    for (name, value) in request.headers {
        if name == "content-length" || name == "transfer-encoding" {
            if !framed { out += Array("content-length:\(request.body.count)\n".utf8) }
            framed = true
            continue
        }
        out += Array("\(name):\(value)\n".utf8)
    }
    if !framed && !request.body.isEmpty { out += Array("content-length:\(request.body.count)\n".utf8) }
    out.append(0x0A)
    return out + request.body
}

func checkRewrite(_ request: HTTPRequest, limits: HTTPRequestParser.Limits) {
    let bytes = rewrite(request)
    guard bytes.count - request.body.count <= limits.maxHeaderBytes else { return }
    let again = run(bytes, pieces: Split.whole(bytes.count), limits: limits)
    require(again.error == nil, "the rewritten request \(String(decoding: bytes, as: UTF8.self).debugDescription) fails: \(again.error!)")
    require(again.requests.count == 1, "the rewritten request gives \(again.requests.count) requests")
    let original = Parsed(request, consumed: bytes.count)
    var reparsed = again.requests[0]
    // Its framing header is the one written, whatever the original's were.
    reparsed.headers = reparsed.headers.filter { !$0.hasPrefix("content-length\u{0}") }
    var expected = original
    expected.headers = expected.headers.filter { !$0.hasPrefix("content-length\u{0}") && !$0.hasPrefix("transfer-encoding\u{0}") }
    require(reparsed == expected, "rewritten \(reparsed) != \(expected)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = inputBytes(start, count)
    var generator = SplitMix(seeding: input)
    for limits in [HTTPRequestParser.Limits(), smallLimits] {
        let whole = run(input, pieces: Split.whole(input.count), limits: limits)
        let bytes = run(input, pieces: Split.bytes(input.count), limits: limits)
        require(whole == bytes, "whole \(whole) != byte by byte \(bytes)")
        // (Asking twice with no new byte here, where it costs little, rather than byte by byte.)
        let pieces = run(input, pieces: Split.random(input.count, maxPiece: 64, using: &generator), limits: limits, repeatNeedMore: true)
        require(whole == pieces, "whole \(whole) != in pieces \(pieces)")
        // Rewrite what parsed (re-parsing from the start to get the requests themselves).
        var parser = HTTPRequestParser(limits: limits)
        var buffer = input
        for _ in whole.requests {
            guard case .request(let consumed)? = try? buffer.withUnsafeBufferPointer({ bytes throws(HTTPParseError) in try parser.parse(bytes) }),
                  let request = parser.request
            else { fail("the requests did not parse again") }
            checkRewrite(request, limits: limits)
            parser.reset()
            buffer.removeFirst(consumed)
        }
    }
    return 0
}
