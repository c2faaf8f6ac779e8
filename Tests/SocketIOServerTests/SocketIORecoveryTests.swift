import CLinux
import Foundation
import JSON
import ServerRuntime
import SocketIO
import Synchronization
import XCTest
@testable import HTTPServer
@testable import ServerRuntime
@testable import SocketIOServer

/// Connection state recovery in the generic Socket.IO server, over polling on a real loop: the
/// CONNECT reply waits for the application's replay, live events given meanwhile follow it
/// (those the replay already holds are left out), and a connection that did not ask sees no
/// `pid` and no waiting.
final class SocketIORecoveryTests: XCTestCase {
    private var loop: EventLoop!
    private var thread: PlatformThread!
    private var engine: EngineIOServer!
    private let probe = RecoveryProbe()

    override func setUp() {
        signal(SIGPIPE, SIG_IGN)
        loop = EventLoop(index: 0)
        let loop = self.loop!
        thread = PlatformThread.start(name: "sio-recovery-test-loop") { loop.run() }
        let probe = self.probe
        let recovery = SocketIORecovery(scope: .whenAsked, newSession: { _ in probe.newPID() }, resume: { socket, pid, offset, completion in
            probe.state.withLock { $0.resumes.append((pid, offset, completion)) }
        })
        let namespace = SocketIONamespace(name: "/", authorize: { _, _, answer in answer(.accepted(userID: "u1")) }, onConnect: { socket, _ in
            probe.state.withLock { $0.sockets.append(socket) }
        }, recovery: recovery)
        let server = SocketIOServer(namespaces: [namespace])
        engine = EngineIOServer(path: "/socket.io/", options: EngineIOOptions()) { server.makeConnection(for: $0) }
    }

    override func tearDown() {
        engine.closeAllSessions(timeoutMilliseconds: 0)
        loop.requestShutdown()
        thread.join()
    }

    // MARK: - Driving it over polling

    private func request(_ method: String, _ query: String, body: String = "") -> HTTPResponse {
        let done = expectation(description: "\(method) \(query)")
        let box = Locked<HTTPResponse?>(nil)
        let request = HTTPRequest(method: method, target: "/socket.io/?EIO=4&\(query)", minorVersion: 1, headers: [], body: Array(body.utf8))
        let engine = self.engine!, loop = self.loop!
        loop.execute { engine.handle(request, on: loop) { response in box.withLock { $0 = response }; done.fulfill() } }
        wait(for: [done], timeout: 5)
        return box.withLock { $0! }
    }

    /// A session with a CONNECT sent; its id.
    private func connect(auth: String) throws -> String {
        let open = try EngineIOPacket.decode(payload: request("GET", "transport=polling").body)
        let sid = try XCTUnwrap(JSONParser.parse(open[0].data)["sid"]?.stringValue)
        XCTAssertEqual(request("POST", "transport=polling&sid=\(sid)", body: "40\(auth)").status, 200)
        onLoop {}  // the POST is answered before its packets are handled, in the same task
        onLoop {}  // the CONNECT check's answer comes back to the loop as a task of its own
        return sid
    }

    /// The packets waiting for the next poll (texts).
    private func poll(_ sid: String) throws -> [String] {
        try EngineIOPacket.decode(payload: request("GET", "transport=polling&sid=\(sid)").body).map { String(decoding: $0.data, as: UTF8.self) }
    }

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        let done = expectation(description: "on the loop")
        loop.execute { body(); done.fulfill() }
        wait(for: [done], timeout: 5)
    }

    private var socket: SocketIOSocket { probe.state.withLock { $0.sockets.last! } }

    private static func event(_ n: Int, offset: Bool = true) -> [UInt8] {
        Array((offset ? #"2["e",\#(n),"o\#(n)"]"# : #"2["e",\#(n)]"#).utf8)
    }

    // MARK: - Tests

    func testAConnectionThatDoesNotAskGetsNoPidAndNoWait() throws {
        let sid = try connect(auth: #"{"token":"t"}"#)
        let socket = self.socket
        XCTAssertFalse(socket.recovers)
        onLoop { socket.sendEncoded(Self.event(1, offset: false), position: 1) }
        let packets = try poll(sid)
        XCTAssertEqual(packets.count, 2)
        XCTAssertEqual(try JSONParser.parse(Array(packets[0].utf8.dropFirst())).objectValue?.members.map(\.key), ["sid"])
        XCTAssertEqual(packets[1], #"2["e",1]"#)
        XCTAssertTrue(probe.state.withLock { $0.resumes.isEmpty })
    }

    func testAskingForRecoveryGivesANewSessionAtOnce() throws {
        let sid = try connect(auth: #"{"token":"t","recover":true}"#)
        XCTAssertTrue(socket.recovers)
        let packets = try poll(sid)
        XCTAssertEqual(try JSONParser.parse(Array(packets[0].utf8.dropFirst()))["pid"]?.stringValue, "pid-1")
        XCTAssertFalse(socket.recovered)
    }

    func testAResumeSendsTheReplayThenOnlyTheLiveEventsItDidNotHold() throws {
        let sid = try connect(auth: #"{"token":"t","pid":"pid-old","offset":"o3"}"#)
        let socket = self.socket
        XCTAssertTrue(socket.recovers, "a pid asks for recovery by itself")
        let (pid, offset, completion) = try XCTUnwrap(probe.state.withLock { $0.resumes.first })
        XCTAssertEqual(pid, "pid-old")
        XCTAssertEqual(offset, "o3")
        // Live events while the replay is read: 5 committed before the replay's snapshot (so
        // the replay has it too), 6 after; an ack with no position.
        onLoop {
            socket.sendEncoded(Self.event(5), position: 5)
            socket.sendEncoded(Self.event(6), position: 6)
            socket.sendEncoded(Array("31[{}]".utf8))
        }
        let pending = expectation(description: "nothing before the replay")
        let early = Locked<HTTPResponse?>(nil)
        let engine = self.engine!, loop = self.loop!
        let held = HTTPRequest(method: "GET", target: "/socket.io/?EIO=4&transport=polling&sid=\(sid)", minorVersion: 1, headers: [], body: [])
        loop.execute { engine.handle(held, on: loop) { response in early.withLock { $0 = response }; pending.fulfill() } }
        usleep(200_000)
        XCTAssertNil(early.withLock { $0 }, "the CONNECT reply waits for the replay")

        completion(SocketIORecovery.Missed(packets: [Self.event(4), Self.event(5)], position: 5))
        wait(for: [pending], timeout: 5)
        var packets = try EngineIOPacket.decode(payload: early.withLock { $0!.body }).map { String(decoding: $0.data, as: UTF8.self) }
        if packets.count < 5 { packets += try poll(sid) }
        XCTAssertEqual(try JSONParser.parse(Array(packets[0].utf8.dropFirst()))["pid"]?.stringValue, "pid-old")
        XCTAssertEqual(Array(packets.dropFirst()), [#"2["e",4,"o4"]"#, #"2["e",5,"o5"]"#, #"2["e",6,"o6"]"#, "31[{}]"])
        onLoop { XCTAssertTrue(socket.recovered) }
    }

    func testAResumeThatCannotBeReplayedStartsANewSessionWithEverythingLive() throws {
        let sid = try connect(auth: #"{"token":"t","pid":"pid-unknown"}"#)
        let socket = self.socket
        let (_, offset, completion) = try XCTUnwrap(probe.state.withLock { $0.resumes.first })
        XCTAssertNil(offset)
        onLoop { socket.sendEncoded(Self.event(9), position: 9) }
        completion(nil)
        onLoop {}
        let packets = try poll(sid)
        XCTAssertEqual(try JSONParser.parse(Array(packets[0].utf8.dropFirst()))["pid"]?.stringValue, "pid-1")
        XCTAssertEqual(Array(packets.dropFirst()), [#"2["e",9,"o9"]"#])
        onLoop { XCTAssertFalse(socket.recovered) }
    }

    func testAReplayThatAnswersAfterTheClientLeftSendsNothing() throws {
        let sid = try connect(auth: #"{"token":"t","pid":"p","offset":"o1"}"#)
        let (_, _, completion) = try XCTUnwrap(probe.state.withLock { $0.resumes.first })
        XCTAssertEqual(request("POST", "transport=polling&sid=\(sid)", body: "1").status, 200)
        completion(SocketIORecovery.Missed(packets: [Self.event(2)], position: 2))
        onLoop {}
        XCTAssertNil(engine.lookup(sid))
        let socket = self.socket
        onLoop { XCTAssertFalse(socket.isConnected) }
    }
}

/// What the namespace saw, and the replays it was asked for (answered by the tests).
private final class RecoveryProbe: Sendable {
    struct State {
        var sockets: [SocketIOSocket] = []
        var resumes: [(pid: String, offset: String?, completion: @Sendable (SocketIORecovery.Missed?) -> Void)] = []
        var pids = 0
    }

    let state = Locked(State())

    func newPID() -> String {
        state.withLock { state in
            state.pids += 1
            return "pid-\(state.pids)"
        }
    }
}
