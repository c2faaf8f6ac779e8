import ChatCore
import Foundation
import ServerRuntime
import XCTest

/// The order in which one process hands out the stream when several write to one database:
/// its own writes at once when nothing comes before them, others' spans read in their turn,
/// gaps read once they cannot be ours, nothing twice, and stray or failed reads survived.
final class StreamSequencerTests: XCTestCase {
    /// The log of what was handed out ("own (a,b]" or "read (a,b]"), and the reads waiting
    /// for the test to answer them.
    private final class Harness: Sendable {
        struct Pending {
            let span: StreamSpan
            let completion: @Sendable (Int64?) -> Void
        }

        final class Reads: Sendable {
            let pending = Locked<[Pending]>([])
            let started = Locked<[StreamSpan]>([])
        }

        let log = Locked<[String]>([])
        let readLog = Reads()
        let sequencer: StreamSequencer

        init() {
            let reads = readLog
            sequencer = StreamSequencer(retryMilliseconds: 20) { span, completion in
                reads.started.withLock { $0.append(span) }
                reads.pending.withLock { $0.append(Pending(span: span, completion: completion)) }
            }
        }

        /// Answers the oldest read: delivered through `through` (the span's end by default), or nil.
        func answer(through: Int64?? = .none) {
            guard let read = readLog.pending.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { return XCTFail("no read waits") }
            let end: Int64? = switch through {
            case .none: read.span.through
            case .some(let value): value
            }
            if let end, end > read.span.after { log.withLock { $0.append("read \(StreamSpan(after: read.span.after, through: end))") } }
            read.completion(end)
        }

        func own(_ after: Int64, _ through: Int64) {
            sequencer.ownWriteStarted()
            finish(after, through)
        }

        func finish(_ after: Int64, _ through: Int64) {
            let span = StreamSpan(after: after, through: through)
            sequencer.ownWriteFinished(span: span) { [self] in log.withLock { $0.append("own \(span)") } }
        }

        var entries: [String] { log.withLock { $0 } }
        var reads: [StreamSpan] { readLog.started.withLock { $0 } }
        var waitingReads: Int { readLog.pending.withLock { $0.count } }
    }

    private func span(_ after: Int64, _ through: Int64) -> StreamSpan { StreamSpan(after: after, through: through) }

    func testOwnWritesThatFollowOneAnotherGoAtOnceAndNothingIsRead() {
        let harness = Harness()
        harness.sequencer.headIs(0)
        harness.own(0, 3)
        harness.own(3, 5)
        XCTAssertEqual(harness.entries, ["own (0, 3]", "own (3, 5]"])
        XCTAssertEqual(harness.reads, [])
        XCTAssertEqual(harness.sequencer.deliveredThrough, 5)
    }

    func testOwnWriteWaitsForAnEarlierSpanOfAnotherProcess() {
        let harness = Harness()
        harness.sequencer.headIs(0)
        harness.sequencer.heard(span(0, 2), ours: false)
        XCTAssertEqual(harness.reads, [span(0, 2)])
        harness.own(2, 4)
        XCTAssertEqual(harness.entries, [], "ours waits for the read of the span before it")
        XCTAssertEqual(harness.sequencer.waitingWrites, 1)
        harness.answer()
        XCTAssertEqual(harness.entries, ["read (0, 2]", "own (2, 4]"])
        XCTAssertEqual(harness.sequencer.waitingWrites, 0)
    }

    func testSpansHeardOutOfOrderAreReadTogetherAndSpansHeardAgainAreIgnored() {
        let harness = Harness()
        harness.sequencer.headIs(0)
        harness.sequencer.heard(span(2, 4), ours: false)
        // (0, 2] is a gap, and with no write of ours in flight it is not ours: read at once.
        XCTAssertEqual(harness.reads, [span(0, 2)])
        harness.sequencer.heard(span(0, 2), ours: false)
        harness.answer()
        XCTAssertEqual(harness.reads, [span(0, 2), span(2, 4)])
        harness.answer()
        harness.sequencer.heard(span(0, 2), ours: false)
        harness.sequencer.heard(span(2, 4), ours: false)
        XCTAssertEqual(harness.reads.count, 2, "nothing is read twice")
        XCTAssertEqual(harness.entries, ["read (0, 2]", "read (2, 4]"])
    }

    func testFollowingSpansOfOthersTakeOneRead() {
        let harness = Harness()
        harness.sequencer.headIs(0)
        harness.sequencer.ownWriteStarted()  // so that nothing is read as a gap meanwhile
        harness.sequencer.heard(span(2, 4), ours: false)
        harness.sequencer.heard(span(4, 9), ours: false)
        XCTAssertEqual(harness.reads, [], "(0, 2] may be the write in flight")
        harness.finish(0, 2)
        XCTAssertEqual(harness.entries, ["own (0, 2]"])
        XCTAssertEqual(harness.reads, [span(2, 9)])
    }

    func testAGapBeforeAFinishedWriteOfOursIsReadEvenWithAnotherInFlight() {
        let harness = Harness()
        harness.sequencer.headIs(0)
        harness.sequencer.ownWriteStarted()
        harness.sequencer.ownWriteStarted()
        harness.finish(6, 8)  // ours commit in order: the one still in flight comes after 8
        XCTAssertEqual(harness.reads, [span(0, 6)])
        harness.answer()
        XCTAssertEqual(harness.entries, ["read (0, 6]", "own (6, 8]"])
    }

    func testAFailedWriteOfOursLetsTheGapBeRead() {
        let harness = Harness()
        harness.sequencer.headIs(0)
        harness.sequencer.ownWriteStarted()
        harness.sequencer.headIs(5)  // the failed write may have committed (0, 5]
        XCTAssertEqual(harness.reads, [])
        harness.sequencer.ownWriteFinished(span: nil) { [harness] in harness.log.withLock { $0.append("refusals") } }
        XCTAssertEqual(harness.entries, ["refusals"], "a failure is answered at once")
        XCTAssertEqual(harness.reads, [span(0, 5)])
    }

    func testALongSpanIsReadInPages() {
        let harness = Harness()
        harness.sequencer.headIs(0)
        harness.sequencer.heard(span(0, 10), ours: false)
        harness.answer(through: 4)
        XCTAssertEqual(harness.reads, [span(0, 10), span(4, 10)])
        harness.answer()
        XCTAssertEqual(harness.entries, ["read (0, 4]", "read (4, 10]"])
        XCTAssertEqual(harness.sequencer.deliveredThrough, 10)
    }

    func testAFailedReadIsTriedAgainAndOursWaitsMeanwhile() {
        let harness = Harness()
        harness.sequencer.headIs(0)
        harness.sequencer.heard(span(0, 3), ours: false)
        harness.own(3, 4)
        harness.answer(through: .some(nil))
        XCTAssertEqual(harness.entries, [])
        let deadline = Date().addingTimeInterval(5)
        while harness.waitingReads == 0, Date() < deadline { usleep(1000) }
        XCTAssertEqual(harness.reads, [span(0, 3), span(0, 3)], "the same span again, after a pause")
        harness.answer()
        XCTAssertEqual(harness.entries, ["read (0, 3]", "own (3, 4]"])
    }

    func testASpanAnnouncedBeyondTheDatabaseIsForgotten() {
        let harness = Harness()
        harness.sequencer.headIs(0)
        harness.sequencer.heard(span(0, 1_000_000), ours: false)
        harness.answer(through: 0)  // the database's stream ends at 0: nothing there
        XCTAssertEqual(harness.reads.count, 1)
        harness.own(0, 2)
        XCTAssertEqual(harness.entries, ["own (0, 2]"], "ours is not held behind a span that is not there")
        XCTAssertEqual(harness.reads.count, 1)
    }

    func testAStraySpanIsClampedByTheDatabaseAndRealSpansStillCome() {
        let harness = Harness()
        harness.sequencer.headIs(0)
        harness.sequencer.heard(span(0, 1_000_000), ours: false)
        harness.answer(through: 5)  // the read stops at the committed head
        XCTAssertEqual(harness.reads, [span(0, 1_000_000), span(5, 1_000_000)])
        harness.answer(through: 5)  // nothing past 5 yet
        harness.sequencer.heard(span(5, 7), ours: false)
        harness.answer()
        XCTAssertEqual(harness.entries, ["read (0, 5]", "read (5, 7]"])
    }

    func testAReadNeverPassesAFinishedWriteOfOurs() {
        let harness = Harness()
        harness.sequencer.headIs(10)
        harness.sequencer.ownWriteStarted()
        harness.sequencer.ownWriteStarted()
        harness.finish(12, 14)  // waits for (10, 12]
        harness.sequencer.heard(span(10, 1_000), ours: false)  // a stray that crosses ours
        XCTAssertEqual(harness.reads, [span(10, 12)], "read up to ours, not through it")
        harness.answer()
        XCTAssertEqual(harness.entries, ["read (10, 12]", "own (12, 14]"])
        XCTAssertEqual(harness.reads, [span(10, 12)], "what crossed ours is no real span: not read while one of ours is in flight")
        harness.finish(14, 15)
        XCTAssertEqual(harness.entries, ["read (10, 12]", "own (12, 14]", "own (14, 15]"])
        // The stray's end is still taken for the head until the database says otherwise.
        XCTAssertEqual(harness.reads, [span(10, 12), span(15, 1_000)])
        harness.answer(through: 15)  // nothing there
        XCTAssertEqual(harness.waitingReads, 0)
        harness.own(15, 16)
        XCTAssertEqual(harness.entries.last, "own (15, 16]")
        XCTAssertEqual(harness.reads.count, 2, "and it is forgotten")
    }

    func testAReadThatFailsAtOnceWaitsItsPauseInsteadOfSpinning() {
        final class Counter: Sendable { let calls = Locked(0) }
        let counter = Counter()
        let sequencer = StreamSequencer(retryMilliseconds: 200) { _, completion in
            counter.calls.withLock { $0 += 1 }
            completion(nil)  // refused on the spot (a pool shutting down)
        }
        sequencer.headIs(0)
        sequencer.heard(StreamSpan(after: 0, through: 5), ours: false)
        usleep(100_000)
        XCTAssertEqual(counter.calls.withLock { $0 }, 1, "tried once, then paused")
        usleep(200_000)
        XCTAssertEqual(counter.calls.withLock { $0 }, 2, "and again after the pause")
    }

    func testAtStartAnotherSpanDoesNotGoBeforeAWriteOfOursInFlight() {
        let harness = Harness()
        harness.sequencer.ownWriteStarted()
        harness.sequencer.heard(span(12, 15), ours: false)
        XCTAssertEqual(harness.reads, [], "ours, in flight, may come before it")
        harness.finish(10, 12)
        XCTAssertEqual(harness.entries, ["own (10, 12]"])
        XCTAssertEqual(harness.reads, [span(12, 15)])
    }

    func testOursHeardOnTheChannelIsNotRead() {
        let harness = Harness()
        harness.sequencer.headIs(0)
        harness.sequencer.ownWriteStarted()
        harness.sequencer.heard(span(0, 3), ours: true)
        XCTAssertEqual(harness.reads, [], "its result is on its way")
        harness.finish(0, 3)
        XCTAssertEqual(harness.entries, ["own (0, 3]"])
        XCTAssertEqual(harness.reads, [])
    }

    func testWithoutAHeadDeliveryStartsAtTheFirstSpan() {
        let harness = Harness()
        harness.own(7, 9)
        XCTAssertEqual(harness.entries, ["own (7, 9]"])
        harness.sequencer.headIs(3)
        XCTAssertEqual(harness.reads, [], "a head behind what is delivered changes nothing")
    }
}
