import CLinux
import ChatCore
import JSON
import JWT
import Synchronization
import XCTest
import ChatTestSupport

final class MessageServiceTests: XCTestCase {
    func testParseIntLikeJavaScript() {
        let cases: [(String?, Int?)] = [(nil, nil), ("", nil), ("abc", nil), ("42", 42), ("  7x", 7), ("-3", -3), ("+5", 5), ("1e3", 1),
                                        ("3.9", 3), ("99999999999999999999999", Int.max), ("٣", nil)]
        for (text, expected) in cases {
            XCTAssertEqual(MessageService.parseIntLikeJavaScript(text), expected, text ?? "nil")
        }
    }

    func testHistoryPagesAndClamps() {
        let store = InMemoryChatStore(makeID: { "id" })
        let me = "00000000-0000-4000-8000-000000000001", you = "00000000-0000-4000-8000-000000000002"
        for i in 0..<150 {
            let (from, to) = i % 2 == 0 ? (me, you) : (you, me)
            store.addMessage(ChatMessage(id: "m\(i)", senderID: from, receiverID: to, content: "\(i)", createdAt: nil))
        }
        store.addMessage(ChatMessage(id: "other", senderID: me, receiverID: "00000000-0000-4000-8000-000000000003", content: "x", createdAt: nil))
        let service = MessageService(store: store)
        func page(_ limit: String?, _ offset: String?) -> [String] {
            let box = Mutex<[String]>([])
            service.history(callerID: me, otherID: you.uppercased(), limit: limit, offset: offset) { result in
                box.withLock { $0 = (try? result.get().map(\.id)) ?? ["error"] }
            }
            return box.withLock { $0 }
        }
        XCTAssertEqual(page(nil, nil), (0..<20).map { "m\($0)" })
        XCTAssertEqual(page("2", "5"), ["m5", "m6"])
        XCTAssertEqual(page("1000", nil).count, 100)
        XCTAssertEqual(page("0", nil).count, 20, "0 means the default, as parseInt(x) || 20 does")
        XCTAssertEqual(page("-5", nil).count, 1)
        XCTAssertEqual(page("x", "-10").count, 20)
        XCTAssertEqual(page("5", "148"), ["m148", "m149"])
        let box = Mutex<ServiceError?>(nil)
        service.history(callerID: me, otherID: "not-a-uuid", limit: nil, offset: nil) { result in
            if case .failure(let error) = result { box.withLock { $0 = error } }
        }
        XCTAssertEqual(box.withLock { $0 }, .invalidInput("userId must be a UUID"))
    }
}
