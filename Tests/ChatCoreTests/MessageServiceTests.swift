import CLinux
import ChatCore
import JSON
import JWT
import ServerRuntime
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

    private let me = "00000000-0000-4000-8000-000000000001", you = "00000000-0000-4000-8000-000000000002"

    /// 150 messages between me and you, m0…m149 in order, and one with someone else.
    private func service() -> MessageService {
        let store = InMemoryChatStore(makeID: { "id" })
        for i in 0..<150 {
            let (from, to) = i % 2 == 0 ? (me, you) : (you, me)
            store.addMessage(ChatMessage(id: Self.id(i), senderID: from, receiverID: to, content: "m\(i)", createdAt: nil))
        }
        store.addMessage(ChatMessage(id: Self.otherConversation, senderID: me, receiverID: "00000000-0000-4000-8000-000000000003",
                                     content: "x", createdAt: nil))
        return MessageService(store: store)
    }

    private static func id(_ n: Int) -> String { "00000000-0000-7000-8000-\(String(format: "%012d", n))" }
    private static let otherConversation = "00000000-0000-7000-8000-999999999999"

    /// The contents of a page, or the error's message.
    private func page(_ service: MessageService, _ query: MessageService.HistoryQuery, other: String? = nil) -> [String] {
        let box = Locked<[String]>([])
        service.history(callerID: me, otherID: other ?? you.uppercased(), query: query) { result in
            box.withLock {
                switch result {
                case .success(let messages): $0 = messages.map { $0.content ?? "" }
                case .failure(let error): $0 = ["error: \(error.message)"]
                }
            }
        }
        return box.withLock { $0 }
    }

    func testHistoryPagesAndClampsLikeTheNodeServer() {
        let service = service()
        XCTAssertEqual(page(service, .init()), (0..<20).map { "m\($0)" })
        XCTAssertEqual(page(service, .init(limit: "2", offset: "5")), ["m5", "m6"])
        XCTAssertEqual(page(service, .init(limit: "1000")).count, 100)
        XCTAssertEqual(page(service, .init(limit: "0")).count, 20, "0 means the default, as parseInt(x) || 20 does")
        XCTAssertEqual(page(service, .init(limit: "-5")).count, 1)
        XCTAssertEqual(page(service, .init(limit: "x", offset: "-10")).count, 20)
        XCTAssertEqual(page(service, .init(limit: "5", offset: "148")), ["m148", "m149"])
        XCTAssertEqual(page(service, .init(), other: "not-a-uuid"), ["error: userId must be a UUID"])
    }

    func testNewestFirstAndScrollingBackWithBefore() {
        let service = service()
        XCTAssertEqual(page(service, .init(limit: "3", order: "desc")), ["m149", "m148", "m147"])
        XCTAssertEqual(page(service, .init(limit: "3", before: Self.id(147), order: "desc")), ["m146", "m145", "m144"])
        XCTAssertEqual(page(service, .init(limit: "3", before: Self.id(2), order: "desc")), ["m1", "m0"])
        XCTAssertEqual(page(service, .init(limit: "3", before: Self.id(0), order: "desc")), [], "nothing older")
        XCTAssertEqual(page(service, .init(limit: "3", before: Self.id(10))), ["m0", "m1", "m2"], "oldest first by default")
    }

    func testAfterAndWindowsBetweenTwoMessages() {
        let service = service()
        XCTAssertEqual(page(service, .init(limit: "3", after: Self.id(146))), ["m147", "m148", "m149"])
        XCTAssertEqual(page(service, .init(after: Self.id(149))), [], "nothing newer")
        XCTAssertEqual(page(service, .init(before: Self.id(14), after: Self.id(10))), ["m11", "m12", "m13"])
        XCTAssertEqual(page(service, .init(before: Self.id(14), after: Self.id(10), order: "desc")), ["m13", "m12", "m11"])
        XCTAssertEqual(page(service, .init(limit: "1", offset: "1", after: Self.id(10))), ["m12"], "offset counts from the bound")
        XCTAssertEqual(page(service, .init(after: Self.id(10).uppercased(), order: "asc")).first, "m11", "ids in any case")
    }

    func testBadBoundsAndOrdersAreRefusedWithAReason() {
        let service = service()
        XCTAssertEqual(page(service, .init(order: "newest")), ["error: order must be asc or desc, not 'newest'"])
        XCTAssertEqual(page(service, .init(before: "42")), ["error: before must be the id of a message in this conversation or a cursor"])
        XCTAssertEqual(page(service, .init(after: "")), ["error: after must be the id of a message in this conversation or a cursor"])
        XCTAssertEqual(page(service, .init(before: Self.otherConversation)), ["error: before must be the id of a message in this conversation"],
                       "a message of another conversation bounds nothing and reveals nothing")
        XCTAssertEqual(page(service, .init(after: "00000000-0000-7000-8000-000000000777")),
                       ["error: after must be the id of a message in this conversation"])
    }
}

/// The stream of a user (what they received and sent) paged by cursor.
final class SyncTests: XCTestCase {
    private let me = "00000000-0000-4000-8000-000000000001", you = "00000000-0000-4000-8000-000000000002"
    private let other = "00000000-0000-4000-8000-000000000003"

    /// m0…m9 between me and you in turns, and between them x0…x4 of a conversation I am not in.
    private func service() -> MessageService {
        let store = InMemoryChatStore(makeID: { "id" })
        for i in 0..<10 {
            let (from, to) = i % 2 == 0 ? (me, you) : (you, me)
            store.addMessage(ChatMessage(id: "m\(i)", senderID: from, receiverID: to, content: "m\(i)", createdAt: nil))
            if i % 2 == 0 { store.addMessage(ChatMessage(id: "x\(i / 2)", senderID: you, receiverID: other, content: "x", createdAt: nil)) }
        }
        return MessageService(store: store)
    }

    private func sync(_ service: MessageService, after: String?, limit: Int?) -> Result<MessageService.SyncPage, ServiceError> {
        let box = Locked<Result<MessageService.SyncPage, ServiceError>?>(nil)
        service.sync(callerID: me, after: after, limit: limit) { result in box.withLock { $0 = result } }
        return box.withLock { $0! }
    }

    func testPagesTheWholeStreamOnceAndSaysWhenItIsUpToDate() throws {
        let service = service()
        var after: String?
        var seen: [String] = []
        var pages = 0
        while true {
            let page = try sync(service, after: after, limit: 4).get()
            seen += page.messages.map(\.id)
            after = page.next
            pages += 1
            if !page.more { break }
        }
        XCTAssertEqual(seen, (0..<10).map { "m\($0)" }, "both directions, nobody else's")
        XCTAssertEqual(pages, 3)
        let upToDate = try sync(service, after: after, limit: nil).get()
        XCTAssertEqual(upToDate.messages, [])
        XCTAssertEqual(upToDate.next, after)
        XCTAssertFalse(upToDate.more)
    }

    func testLimitsAreClamped() throws {
        XCTAssertEqual(try sync(service(), after: nil, limit: 0).get().messages.count, 1)
        XCTAssertEqual(try sync(service(), after: nil, limit: -5).get().messages.count, 1)
        XCTAssertEqual(try sync(service(), after: nil, limit: 1_000_000).get().messages.count, 10)
    }

    func testCursorsNotOfThisServerAreRefused() {
        XCTAssertEqual(sync(service(), after: "zzz", limit: nil).failure?.message, "after must be a cursor this server gave")
        XCTAssertEqual(sync(service(), after: StreamCursor.encode(1_000), limit: nil).failure?.message,
                       "after is ahead of every message stored here: a cursor from another server?")
    }
}

private extension Result {
    var failure: Failure? { if case .failure(let error) = self { error } else { nil } }
}
