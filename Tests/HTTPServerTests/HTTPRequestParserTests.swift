import XCTest

@testable import HTTPServer

final class HTTPRequestParserTests: XCTestCase {
    /// Feeds `input` in pieces of `step` bytes, as a socket might deliver it, and collects
    /// every request (or the first error).
    private func feed(_ input: [UInt8], step: Int = .max, limits: HTTPRequestParser.Limits = .init()) -> ([HTTPRequest], HTTPParseError?) {
        var parser = HTTPRequestParser(limits: limits)
        var buffer: [UInt8] = []
        var requests: [HTTPRequest] = []
        var offset = 0
        while offset < input.count {
            let end = min(input.count, offset + max(1, min(step, input.count)))
            buffer.append(contentsOf: input[offset..<end])
            offset = end
            while true {
                do {
                    let event = try buffer.withUnsafeBufferPointer { buffer throws(HTTPParseError) in try parser.parse(buffer) }
                    guard case .request(let consumed) = event else { break }
                    requests.append(parser.request!)
                    parser.reset()
                    buffer.removeFirst(consumed)
                } catch {
                    return (requests, error)
                }
            }
        }
        return (requests, nil)
    }

    private func feed(_ text: String, step: Int = .max, limits: HTTPRequestParser.Limits = .init()) -> ([HTTPRequest], HTTPParseError?) {
        feed(Array(text.utf8), step: step, limits: limits)
    }

    private let login = "POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 39\r\n\r\n{\"email\":\"a@b.co\",\"password\":\"secret1\"}"

    func testParsesARequestWholeAndByteByByteAlike() throws {
        for step in [Int.max, 1, 2, 7] {
            let (requests, error) = feed(login, step: step)
            XCTAssertNil(error, "step \(step)")
            XCTAssertEqual(requests.count, 1, "step \(step)")
            let request = try XCTUnwrap(requests.first)
            XCTAssertEqual(request.method, "POST")
            XCTAssertEqual(request.target, "/api/auth/login")
            XCTAssertEqual(request.minorVersion, 1)
            XCTAssertEqual(request.header("content-type"), "application/json")
            XCTAssertEqual(String(decoding: request.body, as: UTF8.self), #"{"email":"a@b.co","password":"secret1"}"#)
            XCTAssertTrue(request.keepAlive)
        }
    }

    func testPipelinedRequestsComeOutInOrder() {
        let pipelined = "GET /a HTTP/1.1\r\n\r\n" + login + "GET /c?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n"
        for step in [Int.max, 1, 5] {
            let (requests, error) = feed(pipelined, step: step)
            XCTAssertNil(error)
            XCTAssertEqual(requests.map(\.target), ["/a", "/api/auth/login", "/c?x=1"])
            XCTAssertEqual(requests.last?.keepAlive, false)
        }
    }

    func testDecodesChunkedBodiesWithExtensionsAndTrailers() {
        let chunked = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: yes\r\n\r\nGET /next HTTP/1.1\r\n\r\n"
        for step in [Int.max, 1, 3] {
            let (requests, error) = feed(chunked, step: step)
            XCTAssertNil(error, "step \(step)")
            XCTAssertEqual(requests.count, 2)
            XCTAssertEqual(requests.first.map { String(decoding: $0.body, as: UTF8.self) }, "Wikipedia in\r\n\r\nchunks.")
            XCTAssertEqual(requests.last?.target, "/next")
        }
    }

    func testToleratesBareLineFeedsAndLeadingBlankLines() {
        let (requests, error) = feed("\r\n\r\nGET /healthz HTTP/1.0\nHost: x\n\n")
        XCTAssertNil(error)
        XCTAssertEqual(requests.first?.target, "/healthz")
        XCTAssertEqual(requests.first?.keepAlive, false, "HTTP/1.0 closes by default")
    }

    func testKeepAliveRules() {
        XCTAssertEqual(feed("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").0.first?.keepAlive, true)
        XCTAssertEqual(feed("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").0.first?.keepAlive, false)
    }

    func testExpectContinueIsReportedBeforeTheBody() throws {
        var parser = HTTPRequestParser()
        let head = Array("POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n".utf8)
        let event = try head.withUnsafeBufferPointer { buffer throws(HTTPParseError) in try parser.parse(buffer) }
        XCTAssertEqual(event, .needMore)
        XCTAssertTrue(parser.expectsContinue)
        XCTAssertTrue(parser.hasHead)
    }

    func testHeadersOverTheLimitAre431EvenWhenTrickling() {
        let huge = "GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 17_000) + "\r\n\r\n"
        XCTAssertEqual(feed(huge).1?.status, 431)
        XCTAssertEqual(feed(huge, step: 997).1?.status, 431)
        var many = "GET / HTTP/1.1\r\n"
        for i in 0..<101 { many += "X-\(i): v\r\n" }
        XCTAssertEqual(feed(many + "\r\n").1?.status, 431)
    }

    /// Found by the fuzzer (Fuzz/corpus/FuzzHTTPRequest/crash-head-past-limit): a bad request
    /// line ending past the limit was 400 when it came at once and 431 when it trickled in.
    func testAHeadPastTheLimitGetsOneAnswerHoweverItArrives() {
        var limits = HTTPRequestParser.Limits()
        limits.maxHeaderBytes = 64
        let line = "GET /" + String(repeating: "a", count: 70) + "\u{0} HTTP/1.1\r\n\r\n"
        for step in [Int.max, 1, 7] {
            XCTAssertEqual(feed(line, step: step, limits: limits).1?.status, 431, "step \(step)")
        }
    }

    /// Found by the fuzzer (Fuzz/corpus/FuzzHTTPRequest/crash-blank-lines-past-limit): blank
    /// lines before the request line were skipped without a limit when they came at once (then
    /// a bad request line: 400) but counted towards the head's when they trickled in (431).
    func testBlankLinesBeforeTheRequestLineCountTowardsTheLimit() {
        var limits = HTTPRequestParser.Limits()
        limits.maxHeaderBytes = 200
        let past = String(repeating: "\n", count: 204) + "POS\nGET / HTTP/1.1\r\n\r\n"
        let atTheEdge = String(repeating: "\r\n", count: 100) + "POS\n"
        let within = String(repeating: "\r\n", count: 20) + "POS\n"
        let fine = String(repeating: "\r\n", count: 20) + "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        for step in [Int.max, 1, 7] {
            XCTAssertEqual(feed(past, step: step, limits: limits).1?.status, 431, "step \(step)")
            XCTAssertEqual(feed(atTheEdge, step: step, limits: limits).1?.status, 431, "step \(step)")
            XCTAssertEqual(feed(within, step: step, limits: limits).1?.status, 400, "step \(step)")
            XCTAssertNil(feed(fine, step: step, limits: limits).1, "step \(step)")
        }
    }

    /// Found with the fuzzer's whole-versus-byte-by-byte invariant (Fuzz/corpus/FuzzHTTPRequest/
    /// crash-long-trailer, crash-long-chunk-size-line): a trailer line longer than the header
    /// limit, or a chunk-size line longer than 1 KiB, was accepted when it came at once and
    /// refused when it trickled in.
    func testLongChunkLinesGetOneAnswerHoweverTheyArrive() {
        var limits = HTTPRequestParser.Limits()
        limits.maxHeaderBytes = 200
        let trailer = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + String(repeating: "a", count: 300) + "\r\n\r\n"
        let sizeLine = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "e", count: 1100) + "\r\nx\r\n0\r\n\r\n"
        for step in [Int.max, 1, 7] {
            XCTAssertEqual(feed(trailer, step: step, limits: limits).1?.status, 431, "step \(step)")
            XCTAssertEqual(feed(sizeLine, step: step).1?.status, 400, "step \(step)")
        }
        // At the limits exactly, accepted either way.
        let trailerAtLimit = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + String(repeating: "a", count: 197) + "\n\r\n"
        let sizeLineAtLimit = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "e", count: 1022) + "\nx\r\n0\r\n\r\n"
        for step in [Int.max, 1, 7] {
            XCTAssertNil(feed(trailerAtLimit, step: step, limits: limits).1, "step \(step)")
            XCTAssertEqual(feed(sizeLineAtLimit, step: step).0.first?.body, [UInt8(ascii: "x")], "step \(step)")
        }
    }

    func testBodiesOverTheLimitAre413BeforeAnyByteOfThem() {
        XCTAssertEqual(feed("POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n").1?.status, 413)
        XCTAssertEqual(feed("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n").1?.status, 400)
        var limits = HTTPRequestParser.Limits()
        limits.maxBodyBytes = 10
        XCTAssertEqual(feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n", limits: limits).1?.status, 413)
    }

    func testMalformedInputIs400AtTheFirstBadByte() {
        // A TLS ClientHello, binary noise, and words that are not HTTP are refused without waiting for more.
        XCTAssertEqual(feed([0x16, 0x03, 0x01, 0x02, 0x00]).1?.status, 400)
        XCTAssertEqual(feed([0x00, 0xFF, 0xFE]).1?.status, 400)
        XCTAssertEqual(feed("hello there\r\n").1?.status, 400)
        let cases = [
            "GET\r\n\r\n", "GET / HTTP/1.1 extra\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET / HTTP/1.1\r\nName : v\r\n\r\n", "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", "GET / FTP/1.1\r\n\r\n",
            "GET relative HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\nA: b\u{1}c\r\n\r\n", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
        ]
        for text in cases {
            XCTAssertEqual(feed(text).1?.status, 400, text.debugDescription)
        }
        XCTAssertEqual(feed("GET / HTTP/2.0\r\n\r\n").1?.status, 505)
        XCTAssertEqual(feed("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").1?.status, 501)
    }

    func testSameContentLengthRepeatedIsAccepted() {
        XCTAssertNil(feed("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok").1)
    }

    func testAbsoluteFormTargetsBecomePaths() {
        XCTAssertEqual(feed("GET http://example.com/api/users?email=a HTTP/1.1\r\n\r\n").0.first?.target, "/api/users?email=a")
    }

    func testQueryParametersArePercentDecoded() {
        let request = feed("GET /api/users?email=a%2Bb%40x.com&limit=5&name=J+D&bad=%zz HTTP/1.1\r\n\r\n").0.first
        XCTAssertEqual(request?.path, "/api/users")
        XCTAssertEqual(request?.queryParameter("email"), "a+b@x.com")
        XCTAssertEqual(request?.queryParameter("limit"), "5")
        XCTAssertEqual(request?.queryParameter("name"), "J D")
        XCTAssertNil(request?.queryParameter("bad"))
        XCTAssertNil(request?.queryParameter("missing"))
    }
}
