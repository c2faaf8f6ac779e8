import ChatCore
import Foundation
import ChatTestSupport
import ServerRuntime
import Synchronization
import XCTest

/// Read receipts through the service: written between message batches, forward only, refused
/// for what is not in the conversation, and part of the user's stream.
final class ConversationServiceTests: XCTestCase {
    private let me = "00000000-0000-4000-8000-000000000001", you = "00000000-0000-4000-8000-000000000002"
    private let other = "00000000-0000-4000-8000-000000000003"
    private var store: InMemoryChatStore!
    private var writer: MessageWriter<Int>!
    private var service: ConversationService!

    override func setUp() {
        store = InMemoryChatStore(makeID: { UUID().uuidString.lowercased() })
        for user in [me, you, other] { store.addUser(id: user, email: "\(user)@example.com") }
        // m1 me→you, m2 you→me, m3 you→me (sequences 1…3); o4 you→other.
        store.addMessage(ChatMessage(id: "m1", senderID: me, receiverID: you, content: "hi", createdAt: nil))
        store.addMessage(ChatMessage(id: "00000000-0000-7000-8000-000000000002", senderID: you, receiverID: me, content: "hello", createdAt: nil))
        store.addMessage(ChatMessage(id: "00000000-0000-7000-8000-000000000003", senderID: you, receiverID: me, content: "there", createdAt: nil))
        store.addMessage(ChatMessage(id: "00000000-0000-7000-8000-000000000004", senderID: you, receiverID: other, content: "psst", createdAt: nil))
        writer = MessageWriter<Int>(store: store) { _, _ in }
        service = ConversationService(store: store, receipts: writer)
    }

    private func markRead(_ userID: String, with peer: String?, upTo: String?) -> Result<ReadMark, ServiceError> {
        let box = Locked<Result<ReadMark, ServiceError>?>(nil)
        service.markRead(userID: userID, peer: peer, upTo: upTo) { result in box.withLock { $0 = result } }
        // A receipt waits up to MessageWriter.readDelayNanoseconds for company.
        let deadline = Date().addingTimeInterval(5)
        while box.withLock({ $0 == nil }), Date() < deadline { usleep(1000) }
        return box.withLock { $0 } ?? .failure(ServiceError(.unavailable))
    }

    func testAReceiptMovesForwardOnlyAndTakesAPlaceInBothStreams() throws {
        let first = try markRead(me, with: you, upTo: "00000000-0000-7000-8000-000000000002").get()
        XCTAssertEqual(first, ReadMark(readSeq: 2, moved: true, unread: 1, receiptSeq: 5), "a place after every message")
        let back = try markRead(me, with: you, upTo: StreamCursor.encode(1)).get()
        XCTAssertEqual(back, ReadMark(readSeq: 2, moved: false, unread: 1), "backwards: stays, nothing announced")
        let all = try markRead(me, with: you, upTo: StreamCursor.encode(3)).get()
        XCTAssertEqual(all, ReadMark(readSeq: 3, moved: true, unread: 0, receiptSeq: 6))

        let sync = MessageService(store: store)
        for (user, expected) in [(me, ReceiptState(peerID: you, readSeq: 3, peerReadSeq: 0, position: 6)),
                                 (you, ReceiptState(peerID: me, readSeq: 0, peerReadSeq: 3, position: 6))] {
            let box = Locked<Result<MessageService.SyncPage, ServiceError>?>(nil)
            sync.sync(callerID: user, after: StreamCursor.encode(2), limit: nil) { result in box.withLock { $0 = result } }
            let page = try XCTUnwrap(box.withLock { $0 }).get()
            XCTAssertEqual(page.events.last, .receipt(expected), "the latest receipt, after the messages, for both sides")
            XCTAssertEqual(page.next, StreamCursor.encode(6))
        }
    }

    func testRefusals() {
        XCTAssertEqual(markRead(me, with: "nobody", upTo: "c1").failure?.message, "with must be a user id (UUID)")
        XCTAssertEqual(markRead(me, with: you, upTo: "not a cursor").failure?.message,
                       "up_to must be the id of a message in this conversation or a cursor")
        XCTAssertEqual(markRead(me, with: you, upTo: "00000000-0000-7000-8000-000000000004").failure?.message,
                       "up_to must be the id of a message in this conversation or a cursor", "a message of another conversation")
        XCTAssertEqual(markRead(me, with: you, upTo: StreamCursor.encode(4)).failure?.message, "up_to is ahead of this conversation's last message")
        XCTAssertEqual(markRead(me, with: other, upTo: "c1").failure?.message, "no conversation with that user")
    }

    func testReceiptsWaitingTogetherGoInOneWrite() throws {
        store.holdWrites()
        XCTAssertTrue(writer.write(senderID: me, receiverID: you, content: "in flight", context: 0).isQueued)
        let answers = Locked<[Result<ReadMark, ServiceError>]>([])
        for upTo in ["c2", "c3", "c1"] {
            service.markRead(userID: me, peer: you, upTo: upTo) { result in answers.withLock { $0.append(result) } }
        }
        XCTAssertEqual(store.readBatchSizes, [], "not beside the message batch")
        store.releaseWrites()
        XCTAssertTrue(writer.waitUntilIdle(timeoutMilliseconds: 5000))
        XCTAssertEqual(store.readBatchSizes, [3])
        XCTAssertEqual(try answers.withLock { $0 }.map { try $0.get().readSeq }, [2, 3, 3])
    }
}

private extension Result {
    var failure: Failure? { if case .failure(let error) = self { error } else { nil } }
}
