import ChatCore
import ChatTestSupport
import Foundation
import ServerRuntime
import Synchronization
import XCTest

/// The group-commit writer against the in-memory store: order, batching, the queue bound,
/// refusals, and draining at shutdown.
final class MessageWriterTests: XCTestCase {
    private typealias Writer = MessageWriter<Int>

    private let alice = "00000000-0000-4000-8000-00000000000a"
    private let bob = "00000000-0000-4000-8000-00000000000b"
    private let nobody = "00000000-0000-4000-8000-0000000000ff"
    private var store: InMemoryChatStore!
    private let reports = Reports()

    override func setUp() {
        store = InMemoryChatStore(makeID: { UUID().uuidString.lowercased() })
        store.addUser(id: alice, email: "alice@example.com")
        store.addUser(id: bob, email: "bob@example.com")
    }

    private func makeWriter(maxBatch: Int = 2000, maxQueued: Int = 20_000) -> Writer {
        let reports = self.reports
        return Writer(store: store, maxBatch: maxBatch, maxQueued: maxQueued) { outcomes, _ in
            reports.batches.withLock { $0.append(outcomes) }
        }
    }

    private var outcomes: [Writer.Outcome] { reports.batches.withLock { $0.flatMap { $0 } } }

    func testEveryMessageIsReportedOnceInOrderWithWhatWasStored() throws {
        let writer = makeWriter()
        for number in 0..<50 {
            XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "message \(number)", context: number).isQueued)
        }
        XCTAssertTrue(writer.waitUntilIdle(timeoutMilliseconds: 5000))
        XCTAssertEqual(outcomes.map(\.context), Array(0..<50))
        let stored = try outcomes.map { try $0.result.get() }
        XCTAssertEqual(stored.map(\.content), (0..<50).map { "message \($0)" })
        XCTAssertEqual(Set(stored.map(\.id)).count, 50)
        XCTAssertEqual(stored.map(\.id), stored.map(\.id).sorted(), "ids grow in the order written")
        XCTAssertTrue(stored.allSatisfy { $0.senderID == alice && $0.receiverID == bob && $0.createdAt == store.createdAt })
        XCTAssertEqual(store.messages.map(\.id), stored.map(\.id), "the store holds them in the same order")
    }

    func testWhatArrivesWhileABatchIsInFlightGoesInTheNextBatchWhole() throws {
        let writer = makeWriter(maxBatch: 30)
        store.holdWrites()
        XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "first", context: 0).isQueued)
        for number in 1...70 { XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "m\(number)", context: number).isQueued) }
        XCTAssertEqual(store.heldBatchCount, 1, "one batch in flight at a time")
        XCTAssertTrue(outcomes.isEmpty, "nothing is reported before its commit")
        store.releaseWrites()
        XCTAssertTrue(writer.waitUntilIdle(timeoutMilliseconds: 5000))
        XCTAssertEqual(store.batchSizes, [1, 30, 30, 10], "the queue goes in batches of at most maxBatch")
        XCTAssertEqual(outcomes.map(\.context), Array(0...70))
    }

    func testTheQueueBoundRefusesAtOnceAndKeepsNothingOfTheRefused() throws {
        let writer = makeWriter(maxQueued: 5)
        store.holdWrites()
        XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "in flight", context: 0).isQueued)
        for number in 1...5 { XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "queued", context: number).isQueued) }
        XCTAssertEqual(writer.write(senderID: alice, receiverID: bob, content: "one too many", context: 6), .refusedPauseSender)
        store.releaseWrites()
        XCTAssertTrue(writer.waitUntilIdle(timeoutMilliseconds: 5000))
        XCTAssertEqual(outcomes.map(\.context), Array(0...5), "the refused message is never reported")
        XCTAssertFalse(store.messages.contains { $0.content == "one too many" })
    }

    func testPastTheHighWaterMarkSendersArePausedThenResumedOnceTheQueueIsHalfAsLong() throws {
        let reports = self.reports
        let resumed = Locked<[[Int]]>([])
        let rooms = Locked<[Int]>([])
        let writer = Writer(store: store, maxBatch: 4, maxQueued: 100, highWater: 8,
                            report: { outcomes, _ in reports.batches.withLock { $0.append(outcomes) } },
                            resume: { contexts, room in
                                resumed.withLock { $0.append(contexts) }
                                rooms.withLock { $0.append(room) }
                            })
        store.holdWrites()
        func write(_ number: Int) -> WriteAdmission { writer.write(senderID: alice, receiverID: bob, content: "m\(number)", context: number) }
        XCTAssertEqual(write(0), .queued, "in flight at once")
        for number in 1...7 { XCTAssertEqual(write(number), .queued, "message \(number): the queue below the mark") }
        XCTAssertFalse(writer.isOverloaded, "7 waiting: below the mark (what /readyz and /metrics ask)")
        XCTAssertEqual(writer.overloadedForMilliseconds, 0)
        XCTAssertEqual(write(8), .queuedPauseSender, "the 8th waiting reaches the mark: taken, and its sender asked to pause")
        XCTAssertTrue(writer.isOverloaded)
        usleep(20_000)
        XCTAssertGreaterThanOrEqual(writer.overloadedForMilliseconds, 15, "overloaded since the mark was reached")
        XCTAssertEqual(write(9), .queuedPauseSender)
        XCTAssertEqual(writer.queuedCount, 9)
        XCTAssertTrue(resumed.withLock { $0 }.isEmpty)
        store.releaseWrites()
        XCTAssertTrue(writer.waitUntilIdle(timeoutMilliseconds: 5000))
        XCTAssertFalse(writer.isOverloaded, "the paused senders were resumed")
        XCTAssertEqual(writer.overloadedForMilliseconds, 0)
        // Batches [0], [1…4] (5 left: more than half the mark), [5…8] (1 left: resumed), [9].
        XCTAssertEqual(store.batchSizes, [1, 4, 4, 1])
        XCTAssertEqual(resumed.withLock { $0 }, [[8, 9]], "the paused senders handed back once, in the order paused")
        XCTAssertEqual(rooms.withLock { $0 }, [7], "the room left up to the mark: 8 − 1 waiting")
        XCTAssertEqual(outcomes.map(\.context), Array(0...9), "nothing taken past the mark is lost")
        XCTAssertEqual(try outcomes.map { try $0.result.get().content }, (0...9).map { "m\($0)" })
    }

    func testASenderWhoseBudgetIsSpentIsPausedBelowTheMarkAndResumedAtTheNextBatch() {
        let resumed = Locked<[[Int]]>([])
        let writer = Writer(store: store, maxBatch: 4, maxQueued: 100, highWater: 8, report: { _, _ in },
                            resume: { contexts, _ in resumed.withLock { $0.append(contexts) } })
        store.holdWrites()
        XCTAssertEqual(writer.write(senderID: alice, receiverID: bob, content: "a", context: 0), .queued)
        XCTAssertEqual(writer.write(senderID: alice, receiverID: bob, content: "b", context: 1, pauseSender: true), .queuedPauseSender)
        XCTAssertTrue(resumed.withLock { $0 }.isEmpty, "held until a batch is taken")
        store.releaseWrites()
        XCTAssertTrue(writer.waitUntilIdle(timeoutMilliseconds: 5000))
        XCTAssertEqual(resumed.withLock { $0 }, [[1]])
        XCTAssertEqual(store.messages.map(\.content), ["a", "b"])
    }

    func testTheHardBoundStillRefusesSendersThatIgnoreThePause() {
        let resumed = Locked<[Int]>([])
        let writer = Writer(store: store, maxBatch: 2, maxQueued: 6, highWater: 4, report: { _, _ in },
                            resume: { contexts, _ in resumed.withLock { $0 += contexts } })
        store.holdWrites()
        let admissions = (0..<9).map { writer.write(senderID: alice, receiverID: bob, content: "m\($0)", context: $0) }
        XCTAssertEqual(admissions, [.queued, .queued, .queued, .queued, .queuedPauseSender, .queuedPauseSender, .queuedPauseSender,
                                    .refusedPauseSender, .refusedPauseSender], "refused past the bound, and paused too")
        store.releaseWrites()
        XCTAssertTrue(writer.waitUntilIdle(timeoutMilliseconds: 5000))
        XCTAssertEqual(store.messages.map(\.content), (0..<7).map { "m\($0)" })
        XCTAssertEqual(resumed.withLock { $0 }, [4, 5, 6, 7, 8], "every sender paused, the refused ones too, is resumed")
    }

    func testAnUnknownReceiverIsRefusedAloneAndTheRestOfTheBatchStored() throws {
        let writer = makeWriter()
        store.holdWrites()
        XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "before", context: 0).isQueued)
        XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "a", context: 1).isQueued)
        XCTAssertTrue(writer.write(senderID: alice, receiverID: nobody, content: "lost", context: 2).isQueued)
        XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "b", context: 3).isQueued)
        store.releaseWrites()
        XCTAssertTrue(writer.waitUntilIdle(timeoutMilliseconds: 5000))
        let results = outcomes
        XCTAssertEqual(results.map(\.context), [0, 1, 2, 3])
        XCTAssertEqual(results[2].result.failure, .unknownRecipient)
        XCTAssertEqual(results[2].receiverID, nobody)
        XCTAssertEqual(try [results[1], results[3]].map { try $0.result.get().content }, ["a", "b"])
        XCTAssertEqual(store.messages.map(\.content), ["before", "a", "b"])
    }

    func testARepeatedClientIDIsAnsweredWithTheFirstMessageAndStoresNothing() throws {
        let writer = makeWriter()
        let clientID = "0193a2b4-c5d6-4e7f-8091-a2b3c4d5e6f7"
        XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "first", clientID: clientID, context: 0).isQueued)
        store.holdWrites()
        // In one batch: a repeat of the stored one, a new one, and a repeat of that new one.
        XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "again", clientID: clientID, context: 1).isQueued)
        XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "second", clientID: "0193a2b4-c5d6-4e7f-8091-000000000002", context: 2).isQueued)
        XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "second again", clientID: "0193a2b4-c5d6-4e7f-8091-000000000002", context: 3).isQueued)
        XCTAssertTrue(writer.write(senderID: bob, receiverID: alice, content: "bob's own", clientID: clientID, context: 4).isQueued)
        store.releaseWrites()
        XCTAssertTrue(writer.waitUntilIdle(timeoutMilliseconds: 5000))
        let results = outcomes
        XCTAssertEqual(results.map(\.isRepeat), [false, true, false, true, false])
        let stored = try results.map { try $0.result.get() }
        XCTAssertEqual(stored[1], stored[0], "the first answer, id, sequence and time")
        XCTAssertEqual(stored[3], stored[2])
        XCTAssertEqual(stored.map(\.content), ["first", "first", "second", "second", "bob's own"])
        XCTAssertEqual(store.messages.map(\.content), ["first", "second", "bob's own"])
        XCTAssertEqual(stored.map(\.seq), [1, 1, 2, 2, 3])
    }

    func testAStoreOutageRefusesTheWholeBatchAsWorthRetrying() {
        let writer = makeWriter()
        store.setAvailable(false)
        XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "x", context: 0).isQueued)
        XCTAssertTrue(writer.waitUntilIdle(timeoutMilliseconds: 5000))
        XCTAssertEqual(outcomes.map { $0.result.failure }, [.unavailable])
        XCTAssertTrue(store.messages.isEmpty)
    }

    func testShutdownRefusesNewMessagesAndWaitsForTheOnesTaken() {
        let writer = makeWriter()
        store.holdWrites()
        for number in 0..<3 { XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "taken", context: number).isQueued) }
        // Shutdown begins: from then on nothing more is taken; what was taken is still
        // written and reported, and the wait lasts until it is.
        XCTAssertFalse(writer.waitUntilIdle(timeoutMilliseconds: 0), "a batch is in flight")
        XCTAssertEqual(writer.write(senderID: alice, receiverID: bob, content: "late", context: 99), .refused)
        let idle = Locked<Bool?>(nil)
        let finished = expectation(description: "waitUntilIdle returned")
        Thread.detachNewThread {
            let result = writer.waitUntilIdle(timeoutMilliseconds: 5000)
            idle.withLock { $0 = result }
            finished.fulfill()
        }
        usleep(100_000)
        XCTAssertNil(idle.withLock { $0 }, "still waiting for the batch in flight")
        store.releaseWrites()
        wait(for: [finished], timeout: 5)
        XCTAssertEqual(idle.withLock { $0 }, true)
        XCTAssertEqual(outcomes.map(\.context), [0, 1, 2])
        XCTAssertEqual(store.messages.count, 3)
    }

    func testWritersOnManyThreadsWithAStoreAnsweringOnAnotherOneKeepEachSendersOrder() throws {
        let writer = makeWriter(maxBatch: 64)
        store.completeAsynchronously(on: DispatchQueue(label: "database"))
        let threads = 4, perThread = 500
        let done = DispatchGroup()
        for thread in 0..<threads {
            done.enter()
            Thread.detachNewThread { [alice, bob] in
                for number in 0..<perThread {
                    // A refusal (the queue full) is retried, as a client would.
                    while !writer.write(senderID: alice, receiverID: bob, content: "\(thread):\(number)", context: thread * 1000 + number).isQueued {
                        usleep(100)
                    }
                }
                done.leave()
            }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success)
        XCTAssertTrue(writer.waitUntilIdle(timeoutMilliseconds: 10_000))
        let reported = outcomes
        XCTAssertEqual(reported.count, threads * perThread, "every message reported once")
        XCTAssertEqual(Set(reported.map(\.context)).count, threads * perThread)
        for thread in 0..<threads {
            let mine = reported.map(\.context).filter { $0 / 1000 == thread }
            XCTAssertEqual(mine, (0..<perThread).map { thread * 1000 + $0 }, "thread \(thread)'s messages in the order it wrote them")
        }
        XCTAssertEqual(try reported.map { try $0.result.get().id }, store.messages.map(\.id), "reported in the order stored")
        XCTAssertGreaterThan(store.batchSizes.max() ?? 0, 1, "messages that arrive while a batch is in flight are batched")
    }

    private func read(_ writer: Writer, upTo seq: Int64, log: Lines) -> Bool {
        writer.markRead(ReadRequest(userID: bob, peerID: alice, upTo: .position(seq))) { result in
            log.append("read \(seq): \((try? result.get())??.readSeq ?? -1)")
        }
    }

    /// A writer logging batches and receipts, with a batch held in flight, a receipt and a
    /// message queued behind it.
    private func writerWithAReceiptQueuedBehindABatch(_ log: Lines) -> Writer {
        let writer = Writer(store: store) { outcomes, _ in log.append("batch \(outcomes.map(\.context))") }
        store.holdWrites()
        XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "in flight", context: 0).isQueued)
        XCTAssertTrue(read(writer, upTo: 1, log: log))
        XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "queued", context: 1).isQueued)
        return writer
    }

    func testReceiptsWaitForCompanyThenGoInOneWriteReportedAfterTheMessages() throws {
        let log = Lines()
        let writer = writerWithAReceiptQueuedBehindABatch(log)
        XCTAssertTrue(read(writer, upTo: 2, log: log))
        XCTAssertEqual(store.readBatchSizes, [], "nothing beside the batch in flight")
        store.releaseWrites()
        XCTAssertTrue(writer.waitUntilIdle(timeoutMilliseconds: 5000))
        // Not yet due when the queued message went: the receipts went together when they were.
        XCTAssertEqual(store.batchSizes, [1, 1])
        XCTAssertEqual(store.readBatchSizes, [2], "both receipts in one write of their own")
        XCTAssertEqual(log.lines, ["batch [0]", "batch [1]", "read 1: 1", "read 2: 2"])
    }

    func testReceiptsThatWaitedTheirDelayGoWithTheNextBatchInItsWrite() throws {
        let log = Lines()
        let writer = writerWithAReceiptQueuedBehindABatch(log)
        usleep(useconds_t(Writer.readDelayNanoseconds / 1000 + 5000))
        store.releaseWrites()
        XCTAssertTrue(writer.waitUntilIdle(timeoutMilliseconds: 5000))
        XCTAssertEqual(store.batchSizes, [1, 1], "the receipt rode with the queued message")
        XCTAssertEqual(store.readBatchSizes, [1])
        XCTAssertEqual(log.lines, ["batch [0]", "batch [1]", "read 1: 1"], "after that batch's messages")
    }

    func testAReceiptAloneIsWrittenAfterItsDelayAndAFailureReachesIt() throws {
        let log = Lines()
        let writer = makeWriter()
        XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "hi", context: 0).isQueued)
        XCTAssertTrue(read(writer, upTo: 1, log: log))
        XCTAssertEqual(store.readBatchSizes, [], "waiting for company")
        let deadline = Date().addingTimeInterval(5)
        while store.readBatchSizes.isEmpty, Date() < deadline { usleep(1000) }
        XCTAssertEqual(store.readBatchSizes, [1], "written by itself once due")
        usleep(10_000)
        XCTAssertEqual(log.lines, ["read 1: 1"])
        store.setAvailable(false)
        let failure = Locked<StoreError?>(nil)
        XCTAssertTrue(writer.markRead(ReadRequest(userID: bob, peerID: alice, upTo: .position(1))) { result in
            if case .failure(let error) = result { failure.withLock { $0 = error } }
        })
        XCTAssertTrue(writer.waitUntilIdle(timeoutMilliseconds: 5000), "shutdown waits for the receipt")
        XCTAssertEqual(failure.withLock { $0 }, .unavailable)
        XCTAssertFalse(writer.markRead(ReadRequest(userID: bob, peerID: alice, upTo: .position(1))) { _ in }, "refused once stopping")
    }

    func testWaitingForIdleGivesUpAfterItsTimeOut() {
        let writer = makeWriter()
        store.holdWrites()
        XCTAssertTrue(writer.write(senderID: alice, receiverID: bob, content: "stuck", context: 0).isQueued)
        XCTAssertFalse(writer.waitUntilIdle(timeoutMilliseconds: 50))
        store.releaseWrites()
    }
}

/// Lines logged from any thread, in order.
private final class Lines: Sendable {
    private let storage = Locked<[String]>([])
    func append(_ line: String) { storage.withLock { $0.append(line) } }
    var lines: [String] { storage.withLock { $0 } }
}

/// What the writer reported, batch by batch.
private final class Reports: Sendable {
    let batches = Locked<[[MessageWriter<Int>.Outcome]]>([])
}

private extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
