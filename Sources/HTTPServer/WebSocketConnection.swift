import CLinux
import ServerRuntime
import WebSocket

#if canImport(Glibc)
import Glibc
#endif

/// What a WebSocket connection reports to its owner, on the connection's loop.
public protocol WebSocketDelegate: AnyObject {
    func webSocket(_ connection: WebSocketConnection, received message: WebSocketMessage)
    /// Called once, however the connection ended.
    func webSocketDidClose(_ connection: WebSocketConnection)
}

/// A server-side WebSocket on one event loop, after the HTTP upgrade: frames in through the
/// RFC 6455 decoder, frames out without blocking. Pings are answered here; a peer that
/// breaks the protocol is closed with the matching code (1002, 1007, 1009); a peer that
/// does not read what we send (over `maxPendingOutput`) is closed with 1008.
public final class WebSocketConnection: Selectable, DeferredFlushing, @unchecked Sendable {
    public let fd: Int32
    public unowned let loop: EventLoop
    /// Held strongly (an echo handler has no other owner) and let go when the connection ends.
    public var delegate: WebSocketDelegate?
    private var decoder: WebSocketDecoder
    private var output = OutputBuffer()
    private var closing = false
    private var closed = false
    private var closeDeadline: Int64?
    private var lastWriteProgress: Int64
    private var interest: UInt32 = 0
    private var flushScheduled = false
    private let maxPendingOutput: Int
    /// Input paused by the owner (back-pressure): nothing more is read or handed out until
    /// `resumeReading`, so TCP slows the peer down.
    private var readingPaused = false

    public init(fd: Int32, loop: EventLoop, leftover: [UInt8], maxMessageBytes: Int, maxPendingOutput: Int = 4 << 20) {
        self.fd = fd
        self.loop = loop
        self.maxPendingOutput = maxPendingOutput
        decoder = WebSocketDecoder(role: .server, maxMessageBytes: maxMessageBytes)
        lastWriteProgress = loop.now
        interest = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
        loop.register(self, events: interest)
        if !leftover.isEmpty {
            decoder.feed(leftover)
            loop.execute { [self] in deliver() }
        }
    }

    public var isOpen: Bool { !closing && !closed }

    // MARK: - Back-pressure

    /// Stops reading: messages already decoded wait in the decoder, the socket is no longer
    /// polled for input (nor for the peer's half-close, which level-triggered epoll would report
    /// again and again), and the peer's sends fill the kernel's buffers until TCP holds it back.
    /// A hang-up or error still ends the connection.
    public func pauseReading() {
        guard !readingPaused, !closed else { return }
        readingPaused = true
        updateInterest()
    }

    /// Reads again: first what the decoder holds, then the socket.
    public func resumeReading() {
        guard readingPaused, !closed else { return }
        readingPaused = false
        updateInterest()
        deliver()
    }

    // MARK: - Sending

    public func send(text: [UInt8]) { send(.text, text) }
    public func send(binary: [UInt8]) { send(.binary, binary) }

    public func send(_ opcode: WebSocketOpcode, _ payload: [UInt8]) {
        guard isOpen else { return }
        output.withAppending { WebSocketFrameEncoder.appendFrame(opcode, payload: payload, to: &$0) }
        if output.pendingCount > maxPendingOutput {
            return close(code: .policyViolation, reason: "client is not reading")
        }
        // Written at the end of the loop's turn, with whatever else this turn sends here.
        if !flushScheduled {
            flushScheduled = true
            loop.flushAtEndOfTurn(self)
        }
    }

    public func flushDeferred() {
        flushScheduled = false
        if !closed { flush() }
    }

    /// Starts the closing handshake: our close frame, then wait (briefly) for the peer's.
    public func close(code: WebSocketCloseCode = .normal, reason: String = "") {
        guard isOpen else { return }
        output.withAppending { WebSocketFrameEncoder.appendFrame(.close, payload: WebSocketFrameEncoder.closePayload(code, reason: reason), to: &$0) }
        closing = true
        closeDeadline = loop.now + 2000
        flush()
    }

    // MARK: - Events

    public func handleEvents(_ events: UInt32) {
        if events & EPOLLOUT.rawValue != 0 { flush() }
        guard !closed else { return }
        let hangUp = EPOLLHUP.rawValue | EPOLLERR.rawValue
        // Paused, an input event may still come in the batch epoll handed out before the pause.
        if events & (readingPaused ? hangUp : EPOLLIN.rawValue | EPOLLRDHUP.rawValue | hangUp) != 0 {
            readAvailable()
        }
    }

    /// Reads a buffer-full at a time and hands out its messages before reading more, so a pause
    /// asked for meanwhile leaves the rest in the kernel (where it holds the peer back), not in
    /// the decoder. Paused, reads only to learn of a hang-up.
    private func readAvailable() {
        let scratch = loop.readBuffer
        while !closed {
            let count = read(fd, scratch.baseAddress, scratch.count)
            if count > 0 {
                if !closing { decoder.feed(UnsafeRawBufferPointer(rebasing: scratch[0..<count])) }
                deliver()
                if count < scratch.count || readingPaused { break }
            } else if count == 0 {
                return terminate()
            } else {
                if errno == EINTR { continue }
                if errno != EAGAIN && errno != EWOULDBLOCK { return terminate() }
                break
            }
        }
    }

    private func deliver() {
        while isOpen && !readingPaused {
            let message: WebSocketMessage?
            do {
                message = try decoder.next()
            } catch {
                return close(code: error.code, reason: error.reason)
            }
            guard let message else { return }
            switch message {
            case .ping(let payload):
                send(.pong, payload)
            case .pong:
                break
            case .close(let code, _):
                // Echo the peer's code (RFC 6455 §5.5.1), then we are done.
                let answer = code.flatMap { WebSocketCloseCode(rawValue: $0) } ?? .normal
                output.withAppending { WebSocketFrameEncoder.appendFrame(.close, payload: code == nil ? [] : WebSocketFrameEncoder.closePayload(answer), to: &$0) }
                closing = true
                flush()
                return terminateWhenFlushed()
            case .text, .binary:
                delegate?.webSocket(self, received: message)
            }
        }
    }

    private func flush() {
        let now = loop.now
        switch output.flush(to: fd, progress: { lastWriteProgress = now }) {
        case .failed: return terminate()
        case .drained: if closing { shutdown(fd, Int32(SHUT_WR)) }
        case .pending: break
        }
        updateInterest()
    }

    private func terminateWhenFlushed() {
        if output.isEmpty { terminate() }
    }

    private func updateInterest() {
        guard !closed else { return }
        var wanted: UInt32 = readingPaused ? 0 : EPOLLIN.rawValue | EPOLLRDHUP.rawValue
        if !output.isEmpty { wanted |= EPOLLOUT.rawValue }
        if wanted != interest {
            interest = wanted
            loop.modify(self, events: wanted)
        }
    }

    public func tick(now: Int64) {
        if let deadline = closeDeadline, now >= deadline { return terminate() }
        if !output.isEmpty && now - lastWriteProgress >= 30_000 { return terminate() }
        // Once a second: buffers that hold nothing give their memory back.
        decoder.releaseBufferIfEmpty()
        output.releaseIfEmpty()
    }

    public func beginShutdown() {
        close(code: .goingAway, reason: "server shutting down")
    }

    /// Closes the socket now and tells the delegate once.
    private func terminate() {
        guard !closed else { return }
        closed = true
        closing = true
        loop.deregisterAndClose(self)
        let delegate = self.delegate
        self.delegate = nil
        delegate?.webSocketDidClose(self)
    }
}
