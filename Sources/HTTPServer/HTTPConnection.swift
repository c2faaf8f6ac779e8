import CLinux
import Logging
import ServerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// One line per request (`HTTPConnection.logAnswer`).
private let accessLog = Logger(label: "chat.http")

/// One HTTP/1.1 connection, confined to its event loop: reads, parses, hands one request at
/// a time to the handler (pipelined requests wait their turn, so answers keep their order),
/// writes without blocking, and enforces the limits and time-outs.
final class HTTPConnection: Selectable, @unchecked Sendable {
    private enum State {
        case reading
        case awaitingResponse(generation: UInt64, keepAlive: Bool, headOnly: Bool)
        /// Answer sent or being sent with `Connection: close`; then half-close and drain.
        case closingAfterWrite
        case lingering(until: Int64)
        /// A 101 answer is being written; then the socket goes to its new owner.
        case handingOver((Int32, [UInt8]) -> Void)
        case closed
    }

    let fd: Int32
    private unowned let loop: EventLoop
    private let handler: any HTTPHandler
    private let limits: HTTPConnectionLimits
    private let dates: HTTPDateCache
    private var state = State.reading
    private var parser: HTTPRequestParser
    private var input: [UInt8] = []
    private var inputStart = 0
    private var output = OutputBuffer()
    private var generation: UInt64 = 0
    private var requestStartedAt: Int64?
    /// The request being answered, for its log line.
    private var answering: Answering?
    private struct Answering {
        let method: String, path: Substring, requestID: String, client: String, startedAt: UInt64
    }
    private let acceptedAt: Int64
    private var servedRequests = 0
    private var lastActivity: Int64
    private var lastWriteProgress: Int64
    private var sentContinue = false
    private var peerClosed = false
    private var stopping = false
    private var processing = false
    private var interest: UInt32 = 0

    init(fd: Int32, loop: EventLoop, handler: any HTTPHandler, limits: HTTPConnectionLimits, dates: HTTPDateCache) {
        self.fd = fd
        self.dates = dates
        self.loop = loop
        self.handler = handler
        self.limits = limits
        parser = HTTPRequestParser(limits: limits.parser)
        lastActivity = loop.now
        lastWriteProgress = loop.now
        acceptedAt = loop.now
        interest = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
        loop.register(self, events: interest)
    }

    // MARK: - Events

    func handleEvents(_ events: UInt32) {
        if events & EPOLLOUT.rawValue != 0 { flush() }
        if case .closed = state { return }
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
            readAvailable()
        }
        if events & EPOLLRDHUP.rawValue != 0 && !wantsInput {
            // Half-closed while we owe an answer: answer, then close. (Level-triggered RDHUP
            // would fire again and again, so it leaves the interest set below.)
            peerClosed = true
        }
        if case .closed = state { return }
        if events & (EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 && !hasPendingOutput {
            return close()
        }
        process()
    }

    private func readAvailable() {
        if case .lingering = state { return drain() }
        guard wantsInput else { return }
        let cap = limits.parser.maxHeaderBytes + limits.parser.maxBodyBytes + 64 * 1024
        let scratch = loop.readBuffer
        while input.count - inputStart < cap {
            let count = read(fd, scratch.baseAddress, scratch.count)
            if count > 0 {
                if inputStart > 0 && inputStart == input.count {
                    input.removeAll(keepingCapacity: true)
                    inputStart = 0
                }
                input.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<count]))
                lastActivity = loop.now
                if requestStartedAt == nil { requestStartedAt = loop.now }
                if count < scratch.count { break }
            } else if count == 0 {
                peerClosed = true
                break
            } else {
                if errno == EINTR { continue }
                if errno != EAGAIN && errno != EWOULDBLOCK { peerClosed = true; hardClose() }
                break
            }
        }
    }

    /// After an error answer: discard what still arrives until EOF or the linger time is up.
    private func drain() {
        let scratch = loop.readBuffer
        while true {
            let count = read(fd, scratch.baseAddress, scratch.count)
            if count > 0 { continue }
            if count < 0 && errno == EINTR { continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
            return close()
        }
    }

    private var wantsInput: Bool {
        if case .reading = state { return true }
        return false
    }

    // MARK: - Requests

    /// Parses and dispatches as many requests as the state allows.
    private func process() {
        guard !processing else { return }
        processing = true
        defer { processing = false }
        while case .reading = state, !closeRequestedWhileIdle() {
            guard output.pendingCount <= limits.maxPendingOutput else { break }
            let event: HTTPRequestParser.Event
            do {
                event = try input.withUnsafeBufferPointer { buffer throws(HTTPParseError) in
                    try parser.parse(UnsafeBufferPointer(rebasing: buffer[inputStart...]))
                }
            } catch {
                refuse(error.status, error.message)
                break
            }
            switch event {
            case .needMore:
                if parser.expectsContinue && !sentContinue {
                    sentContinue = true
                    enqueue(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
                }
                if peerClosed { return close() }
                compactInput()
                updateInterest()
                return
            case .request(let consumed):
                inputStart += consumed
                let request = parser.request!
                parser.reset()
                sentContinue = false
                requestStartedAt = inputStart < input.count ? loop.now : nil
                dispatch(request)
            }
        }
        updateInterest()
    }

    /// While stopping, an idle connection closes instead of reading another request.
    private func closeRequestedWhileIdle() -> Bool {
        guard stopping, inputStart == input.count, parser.isIdle, !hasPendingOutput else { return false }
        close()
        return true
    }

    /// The peer's address, read once, at the connection's first request.
    private lazy var clientAddress = Sockets.peerAddress(fd)

    private func dispatch(_ request: HTTPRequest) {
        var request = request
        request.clientAddress = limits.trustedProxies.client(of: request, peer: clientAddress)
        request.requestID = RequestID.of(header: request.header("x-request-id"))
        answering = Answering(method: request.method, path: request.path, requestID: request.requestID, client: request.clientAddress,
                              startedAt: MonotonicClock.nanoseconds())
        servedRequests += 1
        generation &+= 1
        let current = generation
        state = .awaitingResponse(generation: current, keepAlive: request.keepAlive && !stopping, headOnly: request.method == "HEAD")
        let loop = self.loop
        handler.handle(request, on: loop) { [self] response in
            if loop.isOnLoop {
                complete(generation: current, response: response)
            } else {
                loop.execute { self.complete(generation: current, response: response) }
            }
        }
    }

    private func complete(generation finished: UInt64, response: HTTPResponse) {
        guard case .awaitingResponse(let current, let keepAlive, let headOnly) = state, current == finished else { return }
        var response = response
        if let answering {
            response.headers.append(("X-Request-Id", answering.requestID))
            logAnswer(response, to: answering)
            self.answering = nil
        }
        if let takeover = response.takeover {
            state = .handingOver(takeover)
            enqueue(response.serialized(keepAlive: true, date: dates.current))
            return handOverIfFlushed()
        }
        let stayOpen = keepAlive && !stopping && !(peerClosed && inputStart == input.count)
        enqueue(response.serialized(keepAlive: stayOpen, headOnly: headOnly, date: dates.current))
        if stayOpen {
            state = .reading
            process()
        } else {
            state = .closingAfterWrite
            finishClosingIfFlushed()
        }
    }

    /// The request's line: what was asked, the answer, how long it took, by whom. Never the
    /// query (it may hold a token or an email address), headers or bodies.
    private func logAnswer(_ response: HTTPResponse, to request: Answering) {
        accessLog.log(level: response.accessLogLevel, "request", metadata: {
            let microseconds = (MonotonicClock.nanoseconds() &- request.startedAt) / 1_000
            var fields: Logger.Metadata = ["method": .string(request.method), "path": .string(String(decoding: request.path.utf8.prefix(256), as: UTF8.self)),
                                           "status": .stringConvertible(response.status),
                                           "duration_ms": .stringConvertible(Double(microseconds) / 1_000),
                                           "bytes": .stringConvertible(response.body.count),
                                           "client": .string(request.client), "request_id": .string(request.requestID)]
            if let user = response.userID { fields["user"] = .string(user) }
            return fields
        }())
    }

    /// A request this connection refuses before any handler sees it (malformed, too large, too
    /// slow): a line of its own, since it has no request line to speak of.
    private func refuse(_ status: Int, _ message: String) {
        accessLog.info("refused", metadata: ["status": .stringConvertible(status), "client": .string(clientAddress), "reason": .string(message)])
        let response = HTTPResponse.error(status, message)
        enqueue(response.serialized(keepAlive: false, date: dates.current))
        state = .closingAfterWrite
        finishClosingIfFlushed()
    }

    private func compactInput() {
        if inputStart == input.count {
            input.removeAll(keepingCapacity: input.capacity <= 64 * 1024)
            inputStart = 0
        } else if inputStart > 64 * 1024 {
            input.removeFirst(inputStart)
            inputStart = 0
        }
    }

    // MARK: - Output

    private var hasPendingOutput: Bool { !output.isEmpty }

    private func enqueue(_ bytes: [UInt8]) {
        if !hasPendingOutput { lastWriteProgress = loop.now }
        output.append(bytes)
        flush()
    }

    private func flush() {
        let now = loop.now
        let result = output.flush(to: fd) { lastWriteProgress = now }
        if case .failed = result { return hardClose() }
        if case .drained = result {
            if case .closingAfterWrite = state { return finishClosingIfFlushed() }
            if case .handingOver = state { return handOverIfFlushed() }
            if case .reading = state, !processing { process() }
        }
        updateInterest()
    }

    private func handOverIfFlushed() {
        guard case .handingOver(let takeover) = state else { return }
        guard !hasPendingOutput else { return updateInterest() }
        state = .closed
        loop.deregister(self)
        takeover(fd, Array(input[inputStart...]))
    }

    private func finishClosingIfFlushed() {
        guard !hasPendingOutput else { return updateInterest() }
        if peerClosed { return close() }
        // Half-close and read what the client still sends, so our answer is not lost to a reset.
        shutdown(fd, Int32(SHUT_WR))
        state = .lingering(until: loop.now + limits.lingerMilliseconds)
        updateInterest()
    }

    private func updateInterest() {
        var wanted: UInt32 = peerClosed ? 0 : EPOLLRDHUP.rawValue
        switch state {
        case .reading:
            if output.pendingCount <= limits.maxPendingOutput { wanted |= EPOLLIN.rawValue }
        case .lingering:
            wanted |= EPOLLIN.rawValue
        case .awaitingResponse, .closingAfterWrite, .handingOver, .closed:
            break
        }
        if hasPendingOutput { wanted |= EPOLLOUT.rawValue }
        if case .closed = state { return }
        if wanted != interest {
            interest = wanted
            loop.modify(self, events: wanted)
        }
    }

    // MARK: - Time-outs and closing

    func tick(now: Int64) {
        switch state {
        case .closed:
            return
        case .lingering(let until):
            if now >= until { close() }
            return
        case .reading:
            if let started = requestStartedAt {
                let limit = parser.hasHead ? limits.requestTimeoutMilliseconds : limits.headerTimeoutMilliseconds
                if now - started >= limit {
                    requestStartedAt = nil
                    return refuse(408, "Request timed out")
                }
            } else if servedRequests == 0 && now - acceptedAt >= limits.headerTimeoutMilliseconds {
                return close()  // connected and said nothing
            } else if !hasPendingOutput && now - lastActivity >= limits.idleTimeoutMilliseconds {
                return close()
            }
        case .awaitingResponse, .closingAfterWrite, .handingOver:
            break
        }
        if hasPendingOutput && now - lastWriteProgress >= limits.writeStallMilliseconds { hardClose() }
    }

    func beginShutdown() {
        stopping = true
        // A request already sent but not yet read is served, not dropped.
        if case .reading = state {
            readAvailable()
            process()
        }
    }

    private func hardClose() {
        var linger = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
        close()
    }

    func close() {
        if case .closed = state { return }
        state = .closed
        loop.deregisterAndClose(self)
    }
}
