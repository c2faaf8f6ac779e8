import ChatCore
import JWT
import XCTest

/// Cursors (a place in a user's stream) and recovery session ids (the socket.io `pid`): what
/// they encode, and that anything the server did not make is refused.
final class StreamCursorTests: XCTestCase {
    func testCursorsRoundTripAndSortByPlace() {
        for seq: Int64 in [0, 1, 35, 36, 1_234_567, Int64(Int32.max), Int64.max] {
            XCTAssertEqual(StreamCursor.decode(StreamCursor.encode(seq)), seq, "\(seq)")
        }
        XCTAssertEqual(StreamCursor.encode(0), StreamCursor.start)
        XCTAssertEqual(StreamCursor.encode(1_234_567), "cqglj")
        XCTAssertEqual(StreamCursor.encode(-5), "c0", "no negative places")
    }

    func testAnythingElseIsNoCursor() {
        let bad = ["", "c", "0", "12", "C1", "c-1", "c+1", "c 1", "c1 ", "cA", "c01", "c00", "c1.5", "d1", "c😀",
                   "c" + String(repeating: "z", count: 13), "c" + String(repeating: "1", count: 14), "c1\u{0}"]
        for text in bad { XCTAssertNil(StreamCursor.decode(text), text) }
        // One past Int64.max in base 36.
        XCTAssertNil(StreamCursor.decode("c1y2p0ij32e8e8"))
    }

    private let sessions = RecoverySessionID(signer: JWTSigner(secret: "a secret"))
    private let ann = "00000000-0000-4000-8000-00000000000a", bob = "00000000-0000-4000-8000-00000000000b"

    func testASessionIdCarriesItsStartForItsUserOnly() {
        let pid = sessions.make(userID: ann, start: 4242)
        XCTAssertEqual(sessions.start(of: pid, userID: ann), 4242)
        XCTAssertNil(sessions.start(of: pid, userID: bob), "another user's session")
        XCTAssertNil(RecoverySessionID(signer: JWTSigner(secret: "another secret")).start(of: pid, userID: ann), "another server's")
        XCTAssertNotEqual(sessions.make(userID: ann, start: 4242), pid, "every session its own pid")
    }

    func testATamperedOrMalformedSessionIdIsRefused() {
        let pid = sessions.make(userID: ann, start: 10)
        var parts = pid.split(separator: ".").map(String.init)
        XCTAssertEqual(parts.count, 3)
        let moved = StreamCursor.encode(11) + "." + parts[1] + "." + parts[2]
        XCTAssertNil(sessions.start(of: moved, userID: ann), "the start moved")
        parts[2] = String(parts[2].reversed())
        XCTAssertNil(sessions.start(of: parts.joined(separator: "."), userID: ann))
        for bad in ["", ".", "..", "c0..", pid + ".", "." + pid, pid.uppercased(), String(pid.dropLast()), pid + "0",
                    String(repeating: "c0.", count: 100), "c0.0000000000000000." + String(repeating: "0", count: 24)] {
            XCTAssertNil(sessions.start(of: bad, userID: ann), bad)
        }
    }
}
