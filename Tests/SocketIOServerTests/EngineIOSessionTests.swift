import CLinux
import Foundation
import JSON
import ServerRuntime
import SocketIO
import Synchronization
import WebSocket
import XCTest
@testable import HTTPServer
@testable import ServerRuntime
@testable import SocketIOServer

/// The Engine.IO session's state machine — handshake, polls, the packet cap per poll,
/// overlapping polls, client close, heartbeat, and the polling → WebSocket upgrade — driven
/// through the server's `handle` on a real event loop, with a socket pair for the WebSocket.
final class EngineIOSessionTests: XCTestCase {
    private var loop: EventLoop!
    private var thread: PlatformThread!
    private var engine: EngineIOServer!
    private let delegates = Delegates()

    override func setUp() {
        // As in the server: a write to a peer that is gone fails with EPIPE, not a signal.
        signal(SIGPIPE, SIG_IGN)
        loop = EventLoop(index: 0)
        let loop = self.loop!
        thread = PlatformThread.start(name: "eio-test-loop") { loop.run() }
        makeEngine(EngineIOOptions())
    }

    override func tearDown() {
        engine.closeAllSessions(timeoutMilliseconds: 0)
        loop.requestShutdown()
        thread.join()
    }

    private func makeEngine(_ options: EngineIOOptions) {
        let delegates = self.delegates
        engine = EngineIOServer(path: "/socket.io/", options: options) { _ in
            let delegate = RecordingDelegate()
            delegates.list.withLock { $0.append(delegate) }
            return delegate
        }
    }

    // MARK: - Driving it

    /// Hands `request` to the engine on the loop; the answer, when it comes, fulfils the returned box.
    private func send(_ method: String, _ query: String, body: String = "", headers: [(name: String, value: String)] = []) -> PendingResponse {
        let pending = PendingResponse(expectation(description: "\(method) \(query)"))
        let request = HTTPRequest(method: method, target: "/socket.io/?EIO=4&\(query)", minorVersion: 1, headers: headers, body: Array(body.utf8))
        let engine = self.engine!, loop = self.loop!
        loop.execute { engine.handle(request, on: loop) { pending.resolve($0) } }
        return pending
    }

    private func answer(_ pending: PendingResponse, timeout: TimeInterval = 5) -> HTTPResponse {
        wait(for: [pending.expectation], timeout: timeout)
        return pending.response!
    }

    private func bodyText(_ response: HTTPResponse) -> String { String(decoding: response.body, as: UTF8.self) }

    /// Opens a polling session; its id.
    private func handshake() throws -> String {
        let response = answer(send("GET", "transport=polling"))
        XCTAssertEqual(response.status, 200)
        let packets = try EngineIOPacket.decode(payload: response.body)
        XCTAssertEqual(packets.first?.kind, .open)
        return try XCTUnwrap(JSONParser.parse(packets[0].data)["sid"]?.stringValue)
    }

    private func session(_ id: String) -> EngineIOSession? { engine.lookup(id) }

    /// Runs `body` on the loop and waits for it.
    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        let done = expectation(description: "on the loop")
        loop.execute { body(); done.fulfill() }
        wait(for: [done], timeout: 5)
    }

    private var lastDelegate: RecordingDelegate { delegates.list.withLock { $0.last! } }

    // MARK: - Polling

    func testTheHandshakeOffersTheUpgradeAndTheConfiguredTimings() throws {
        let response = answer(send("GET", "transport=polling"))
        XCTAssertEqual(response.status, 200)
        let open = try EngineIOPacket.decode(payload: response.body)
        XCTAssertEqual(open.count, 1)
        let handshake = try JSONParser.parse(open[0].data)
        XCTAssertEqual(handshake["upgrades"], ["websocket"])
        XCTAssertEqual(handshake["pingInterval"]?.numberValue, 25000)
        XCTAssertEqual(handshake["pingTimeout"]?.numberValue, 20000)
        XCTAssertEqual(handshake["maxPayload"]?.numberValue, 1_000_000)
        XCTAssertEqual(handshake["sid"]?.stringValue?.count, 20)
        XCTAssertEqual(engine.sessionCount, 1)
    }

    func testAHeldPollIsAnsweredByTheFirstPacket() throws {
        let sid = try handshake()
        let held = send("GET", "transport=polling&sid=\(sid)")
        usleep(200_000)
        XCTAssertNil(held.response, "nothing to say: the poll is held")
        let session = try XCTUnwrap(self.session(sid))
        onLoop { session.send(text: Array("hello".utf8)) }
        XCTAssertEqual(bodyText(answer(held)), "4hello")
    }

    func testAPollCarriesAtMostSixteenPacketsAndTheRestWaitForTheNext() throws {
        let sid = try handshake()
        let session = try XCTUnwrap(self.session(sid))
        onLoop { for index in 0..<20 { session.send(text: Array("m\(index)".utf8)) } }
        let first = try EngineIOPacket.decode(payload: answer(send("GET", "transport=polling&sid=\(sid)")).body)
        XCTAssertEqual(first.map { String(decoding: $0.data, as: UTF8.self) }, (0..<16).map { "m\($0)" })
        let second = try EngineIOPacket.decode(payload: answer(send("GET", "transport=polling&sid=\(sid)")).body)
        XCTAssertEqual(second.map { String(decoding: $0.data, as: UTF8.self) }, (16..<20).map { "m\($0)" })
    }

    func testPostedPacketsReachTheApplicationInOrder() throws {
        let sid = try handshake()
        let response = answer(send("POST", "transport=polling&sid=\(sid)", body: "4one\u{1E}4two\u{1E}4three"))
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(bodyText(response), "ok")
        onLoop {}
        XCTAssertEqual(lastDelegate.texts, ["one", "two", "three"])
    }

    func testAMalformedPostIsRefusedAndEndsTheSession() throws {
        let sid = try handshake()
        let response = answer(send("POST", "transport=polling&sid=\(sid)", body: "9nonsense"))
        XCTAssertEqual(response.status, 400)
        XCTAssertEqual(try JSONParser.parse(response.body)["code"]?.numberValue, 3)
        onLoop {}
        XCTAssertEqual(lastDelegate.closeReason, "parse error")
        XCTAssertEqual(answer(send("GET", "transport=polling&sid=\(sid)")).status, 400, "the session is gone")
    }

    func testOverlappingPollsEndTheSession() throws {
        let sid = try handshake()
        let first = send("GET", "transport=polling&sid=\(sid)")
        let second = send("GET", "transport=polling&sid=\(sid)")
        XCTAssertEqual(bodyText(answer(first)), "1", "the held poll gets the close packet")
        XCTAssertEqual(answer(second).status, 400)
        onLoop {}
        XCTAssertEqual(lastDelegate.closeReason, "overlapping polls")
        XCTAssertEqual(engine.sessionCount, 0)
    }

    func testAClientCloseAnswersTheHeldPollWithANoop() throws {
        let sid = try handshake()
        let held = send("GET", "transport=polling&sid=\(sid)")
        XCTAssertEqual(answer(send("POST", "transport=polling&sid=\(sid)", body: "1")).status, 200)
        XCTAssertEqual(bodyText(answer(held)), "6")
        onLoop {}
        XCTAssertEqual(lastDelegate.closeReason, "client close")
    }

    func testAClientCloseWithNoPollHeldLeavesANoopForTheNextPoll() throws {
        let sid = try handshake()
        XCTAssertEqual(answer(send("POST", "transport=polling&sid=\(sid)", body: "1")).status, 200)
        XCTAssertEqual(bodyText(answer(send("GET", "transport=polling&sid=\(sid)"))), "6", "the poll already on its way ends cleanly")
        XCTAssertEqual(answer(send("GET", "transport=polling&sid=\(sid)")).status, 400, "only once")
    }

    func testPingsAreSentAndASilentClientTimesOut() throws {
        var options = EngineIOOptions()
        // The pong must come within pingTimeout of a ping; a second leaves a loaded machine
        // time to answer, and the silent case still ends within the test's wait.
        options.pingIntervalMilliseconds = 50
        options.pingTimeoutMilliseconds = 1000
        makeEngine(options)
        let sid = try handshake()
        let closed = expectation(description: "closed by ping timeout")
        let delegate = lastDelegate
        delegate.onClose = { closed.fulfill() }
        XCTAssertEqual(bodyText(answer(send("GET", "transport=polling&sid=\(sid)"))), "2")
        // A pong keeps it alive through the next ping.
        XCTAssertEqual(answer(send("POST", "transport=polling&sid=\(sid)", body: "3")).status, 200)
        XCTAssertEqual(bodyText(answer(send("GET", "transport=polling&sid=\(sid)"))), "2")
        // No pong this time: the session ends, and the next poll learns it.
        wait(for: [closed], timeout: 5)
        XCTAssertEqual(delegate.closeReason, "ping timeout")
        XCTAssertEqual(answer(send("GET", "transport=polling&sid=\(sid)")).status, 400)
    }

    func testShutdownLetsAPollingClientCollectWhatItIsOwedThenCloses() throws {
        let sid = try handshake()
        let session = try XCTUnwrap(self.session(sid))
        onLoop { for index in 0..<20 { session.send(text: Array("owed\(index)".utf8)) } }
        // What closeAllSessions asks of each session, done here first so the polls below
        // surely come after it; closeAllSessions then waits for the client to collect.
        onLoop { session.closeAfterFlush(reason: "server shutting down") }
        let engine = self.engine!
        let stopped = expectation(description: "every session closed")
        Thread.detachNewThread {
            engine.closeAllSessions(timeoutMilliseconds: 5000)
            stopped.fulfill()
        }
        let first = try EngineIOPacket.decode(payload: answer(send("GET", "transport=polling&sid=\(sid)")).body)
        XCTAssertEqual(first.count, 16)
        let last = try EngineIOPacket.decode(payload: answer(send("GET", "transport=polling&sid=\(sid)")).body)
        XCTAssertEqual(last.map(\.kind), [.message, .message, .message, .message, .close])
        wait(for: [stopped], timeout: 5)
        XCTAssertEqual(lastDelegate.closeReason, "server shutting down")
    }

    func testOnceShutdownBeginsNoSessionOpensAndNothingMoreIsTakenButOutputFlows() throws {
        let sid = try handshake()
        let session = try XCTUnwrap(self.session(sid))
        engine.stopTakingInput()
        onLoop {}
        let refused = answer(send("GET", "transport=polling"))
        XCTAssertEqual(refused.status, 503, "a new session goes elsewhere")
        XCTAssertEqual(refused.headers.first { $0.name == "Retry-After" }?.value, "1")
        XCTAssertEqual(try JSONParser.parse(refused.body)["message"]?.stringValue, "the server is shutting down")
        XCTAssertEqual(engine.sessionCount, 1)
        // A POST now is not taken, and its answer waits for the close.
        let posted = send("POST", "transport=polling&sid=\(sid)", body: "4not taken")
        usleep(200_000)
        XCTAssertNil(posted.response, "the POST's answer is held while the server stops")
        XCTAssertEqual(lastDelegate.texts, [])
        // Back-pressure's resume does not undo the stop.
        onLoop { session.resumeInput() }
        usleep(100_000)
        XCTAssertNil(posted.response)
        // What the session is owed still goes out.
        onLoop { session.send(text: Array("ack".utf8)) }
        XCTAssertEqual(bodyText(answer(send("GET", "transport=polling&sid=\(sid)"))), "4ack")
        onLoop { session.close(reason: "server shutting down") }
        XCTAssertEqual(answer(posted).status, 503, "the held POST is refused at the close: what it carried was not taken")
        XCTAssertEqual(lastDelegate.texts, [])
    }

    // MARK: - Upgrade

    func testUpgradeProbeThenSwitchReleasesTheHeldPollAndMovesTheQueue() throws {
        let sid = try handshake()
        let session = try XCTUnwrap(self.session(sid))
        let held = send("GET", "transport=polling&sid=\(sid)")
        let peer = try upgrade(sid)

        peer.sendText("2probe")
        XCTAssertEqual(peer.receiveText(), "3probe")
        XCTAssertEqual(bodyText(answer(held)), "6", "the held poll is released with a noop so the client can finish")
        // Packets sent during the upgrade wait in the polling queue…
        onLoop { session.send(text: Array("during".utf8)) }
        peer.sendText("5")
        // …and go over the WebSocket once it is the transport, as does everything after.
        XCTAssertEqual(peer.receiveText(), "4during")
        onLoop { session.send(text: Array("after".utf8)) }
        XCTAssertEqual(peer.receiveText(), "4after")
        peer.sendText("4from the client")
        XCTAssertEqual(answer(send("GET", "transport=polling&sid=\(sid)")).status, 400, "polling is over for this session")
        onLoop {}
        XCTAssertEqual(lastDelegate.texts, ["from the client"])
        XCTAssertNil(lastDelegate.closeReason)
    }

    func testABadProbeClosesTheWebSocketButKeepsThePollingSession() throws {
        let sid = try handshake()
        let peer = try upgrade(sid)
        peer.sendText("5")  // the switch before a probe
        XCTAssertEqual(peer.receiveClose(), WebSocketCloseCode.protocolError.rawValue)
        let session = try XCTUnwrap(self.session(sid))
        onLoop { session.send(text: Array("still polling".utf8)) }
        XCTAssertEqual(bodyText(answer(send("GET", "transport=polling&sid=\(sid)"))), "4still polling")
    }

    func testAnUpgradeForAnUnknownSessionIsAcceptedThenClosedWith1008() throws {
        let peer = try upgrade("no-such-session-id00")
        XCTAssertEqual(peer.receiveClose(), WebSocketCloseCode.policyViolation.rawValue)
    }

    /// Asks to upgrade session `sid` and hands the engine one end of a socket pair, as the
    /// HTTP connection would after writing the 101; the other end is the client's.
    private func upgrade(_ sid: String) throws -> SocketPairPeer {
        let handshake = WebSocketClientHandshake()
        let response = answer(send("GET", "transport=websocket&sid=\(sid)", headers: [
            ("upgrade", "websocket"), ("connection", "Upgrade"), ("sec-websocket-key", handshake.key), ("sec-websocket-version", "13"),
        ]))
        XCTAssertEqual(response.status, 101)
        let takeover = try XCTUnwrap(response.takeover)
        let peer = try SocketPairPeer()
        let serverEnd = peer.serverEnd
        loop.execute { takeover(serverEnd, []) }
        return peer
    }
}

/// Every delegate the engine made, in order.
private final class Delegates: Sendable {
    let list = Locked<[RecordingDelegate]>([])
}

/// What the session reported to the application.
private final class RecordingDelegate: EngineIOSessionDelegate, @unchecked Sendable {
    private let state = Locked<(texts: [String], closeReason: String?)>(([], nil))
    var onClose: (@Sendable () -> Void)?

    var texts: [String] { state.withLock { $0.texts } }
    var closeReason: String? { state.withLock { $0.closeReason } }

    func session(_ session: EngineIOSession, receivedText text: [UInt8]) {
        state.withLock { $0.texts.append(String(decoding: text, as: UTF8.self)) }
    }

    func session(_ session: EngineIOSession, receivedBinary bytes: [UInt8]) {}

    func sessionDidClose(_ session: EngineIOSession, reason: String) {
        state.withLock { $0.closeReason = reason }
        onClose?()
    }
}

/// An HTTP answer that arrives on another thread.
private final class PendingResponse: @unchecked Sendable {
    let expectation: XCTestExpectation
    private let box = Locked<HTTPResponse?>(nil)

    init(_ expectation: XCTestExpectation) { self.expectation = expectation }

    var response: HTTPResponse? { box.withLock { $0 } }

    func resolve(_ response: HTTPResponse) {
        box.withLock { $0 = response }
        expectation.fulfill()
    }
}

/// The client's end of a socket pair whose other end the server's WebSocket connection owns.
private final class SocketPairPeer {
    let serverEnd: Int32
    private let clientEnd: Int32
    private var decoder = WebSocketDecoder(role: .client, maxMessageBytes: 1 << 20)

    init() throws {
        var ends: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            throw XCTSkip("socketpair failed")
        }
        serverEnd = ends[0]
        clientEnd = ends[1]
        _ = fcntl(serverEnd, F_SETFL, fcntl(serverEnd, F_GETFL) | O_NONBLOCK)
    }

    deinit { close(clientEnd) }

    func sendText(_ text: String) {
        let frame = WebSocketFrameEncoder.frame(.text, payload: Array(text.utf8), maskingKey: (9, 8, 7, 6))
        _ = frame.withUnsafeBytes { write(clientEnd, $0.baseAddress, $0.count) }
    }

    /// The next message within five seconds, or nil.
    func receive() -> WebSocketMessage? {
        let deadline = MonotonicClock.milliseconds() + 5000
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let message = try? decoder.next() { return message }
            var poller = pollfd(fd: clientEnd, events: Int16(POLLIN), revents: 0)
            let left = deadline - MonotonicClock.milliseconds()
            guard left > 0, poll(&poller, 1, Int32(left)) == 1 else { return nil }
            let count = read(clientEnd, &chunk, chunk.count)
            guard count > 0 else { return nil }
            decoder.feed(chunk[0..<count])
        }
    }

    func receiveText() -> String? {
        guard case .text(let bytes)? = receive() else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    func receiveClose() -> UInt16? {
        while let message = receive() {
            if case .close(let code, _) = message { return code }
        }
        return nil
    }
}
