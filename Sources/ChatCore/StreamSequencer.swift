import Dispatch
import ServerRuntime
import Logging

private let logger = Logger(label: "chat.stream")

/// Places (after, through] in the sequence messages and receipts share: what one write took.
public struct StreamSpan: Sendable, Equatable, CustomStringConvertible {
    public let after: Int64
    public let through: Int64

    public init(after: Int64, through: Int64) {
        self.after = after
        self.through = through
    }

    public var isEmpty: Bool { through <= after }
    public var description: String { "(\(after), \(through)]" }
}

/// Hands out the stream in sequence order, exactly once, when several processes write to one
/// database (README, Several processes). Every write locks the database's stream head, so
/// writes take their places and commit one after the other, each announcing its span by a
/// notification: once a span is known committed, every place up to its end is committed or
/// never will be. This process's own writes are delivered from their results (`ownWriteFinished`);
/// the others' spans, heard of (`heard`) or found past the last one delivered (`headIs`), are
/// read from the database and delivered by `read`. A span is delivered only when everything
/// before it has been, and then never again.
///
/// Gaps: a place past the last delivered that no known span starts at is another process's
/// write whose notification was missed (the listening connection was down) or one of ours
/// whose result is not in yet. Our own writes commit in the order sent, one at a time, so a
/// gap before a finished write of ours, or with none in flight, is never ours: it is read at
/// once. With one of ours in flight and none finished after the gap, it waits for that write.
/// A write of ours that failed (its commit unknown) is read like another's.
public final class StreamSequencer: Sendable {
    /// Reads and delivers the committed events of a span, then reports through where it got
    /// (less than the span's end when it read a page of a long span, or when the database's
    /// stream ends sooner — a span announced beyond it is not trusted), or nil when it could
    /// not read (tried again after `retryMilliseconds`).
    public typealias Read = @Sendable (_ span: StreamSpan, _ completion: @escaping @Sendable (_ deliveredThrough: Int64?) -> Void) -> Void
    public typealias Delivery = @Sendable () -> Void

    struct State {
        /// Through where the stream has been delivered; nil until the first head or span.
        var applied: Int64?
        /// The furthest place known committed.
        var known: Int64 = 0
        /// Finished writes of ours waiting for their turn, by where they start.
        var own: [Int64: (through: Int64, deliver: Delivery)] = [:]
        /// Others' spans heard of, by where they start.
        var others: [Int64: Int64] = [:]
        var ownInFlight = 0
        var reading = false
        /// No read before this (monotonic milliseconds): the last one failed.
        var pausedUntil: Int64 = 0
        /// A thread is running `pump`'s loop (deliveries happen one at a time, in order).
        var pumping = false
    }

    private enum Action {
        case deliver(Delivery)
        case read(StreamSpan)
    }

    private let state = Locked(State())
    private let read: Read
    private let retryMilliseconds: Int

    public init(retryMilliseconds: Int = 500, read: @escaping Read) {
        self.read = read
        self.retryMilliseconds = retryMilliseconds
    }

    /// Through where the stream has been delivered (nil before the first head or span).
    public var deliveredThrough: Int64? { state.withLock { $0.applied } }

    /// Places known committed but not yet delivered here: how far this process is behind the
    /// database's stream (0 when caught up, or before the first head).
    public var undelivered: Int64 { state.withLock { state in state.applied.map { max(0, state.known - $0) } ?? 0 } }

    /// Finished writes of ours still waiting for an earlier span.
    public var waitingWrites: Int { state.withLock { $0.own.count } }

    /// No write of ours waits and no delivery is under way (on any thread).
    public var isSettled: Bool { state.withLock { $0.own.isEmpty && !$0.pumping } }

    /// A write of ours is going to the database: a gap may be its span until it finishes.
    public func ownWriteStarted() {
        state.withLock { $0.ownInFlight += 1 }
    }

    /// A write of ours finished: with its span, `deliver` runs when everything before the span
    /// has been delivered (at once, normally); without one (it failed, or took no place) at once.
    public func ownWriteFinished(span: StreamSpan?, deliver: @escaping Delivery) {
        let now: Bool = state.withLock { state in
            state.ownInFlight = max(0, state.ownInFlight - 1)
            guard let span, !span.isEmpty else { return true }
            state.known = max(state.known, span.through)
            if let applied = state.applied, span.after < applied {
                // Cannot happen: a gap is read only when no write of ours can be in it. Were it
                // read, delivering again beats leaving our senders without their answers.
                logger.warning("stream: our write \(span) was behind the stream already delivered (through \(applied))")
                return true
            }
            state.own[span.after] = (span.through, deliver)
            return false
        }
        if now { deliver() }
        pump()
    }

    /// A notification: `span` committed, by this process (`ours`) or another.
    public func heard(_ span: StreamSpan, ours: Bool) {
        guard !span.isEmpty else { return }
        state.withLock { state in
            state.known = max(state.known, span.through)
            if !ours, state.applied.map({ span.through > $0 }) ?? true { state.others[span.after] = span.through }
        }
        pump()
    }

    /// The stream head as the database has it committed (polled, or read when the listening
    /// connection comes back): everything up to it is there to deliver. The first one heard
    /// is where delivery starts.
    public func headIs(_ head: Int64) {
        state.withLock { state in
            state.known = max(state.known, head)
            if state.applied == nil { state.applied = head }
        }
        pump()
    }

    /// Runs what is due, one action at a time, on the calling thread — or leaves it to the
    /// thread already doing so, which looks at the state again after each action.
    private func pump() {
        let starting = state.withLock { state -> Bool in
            defer { state.pumping = true }
            return !state.pumping
        }
        guard starting else { return }
        while let action = state.withLock({ state -> Action? in
            let action = Self.next(&state)
            if action == nil { state.pumping = false }
            return action
        }) {
            switch action {
            case .deliver(let delivery): delivery()
            case .read(let span): startRead(span)
            }
        }
    }

    /// The next thing to do, taken out of `state`; nil while waiting.
    private static func next(_ state: inout State) -> Action? {
        if state.applied == nil {
            // No head yet: start from the first span there is — one of ours, or another's once
            // none of ours is in flight (ours might come before it).
            let candidates = state.ownInFlight > 0 ? Array(state.own.keys) : Array(state.own.keys) + Array(state.others.keys)
            guard let first = candidates.min() else { return nil }
            state.applied = first
        }
        guard let applied = state.applied, !state.reading else { return nil }
        // Spans that start before what is delivered (heard twice, read already, or not real).
        for after in state.others.keys where after < applied { state.others[after] = nil }
        if let own = state.own.removeValue(forKey: applied) {
            state.applied = own.through
            return .deliver(own.deliver)
        }
        guard MonotonicClock.milliseconds() >= state.pausedUntil else { return nil }
        // A read never passes a finished write of ours (it would deliver it as another's).
        let ownAfter = state.own.keys.filter { $0 > applied }.min()
        if let first = state.others.removeValue(forKey: applied) {
            // Others' spans that follow one another: one read.
            var end = first
            while state.own[end] == nil, let following = state.others.removeValue(forKey: end) { end = following }
            if let ownAfter, end > ownAfter {
                state.others[ownAfter] = end  // the rest, after ours (a span that crossed ours is no real one)
                end = ownAfter
            }
            state.reading = true
            return .read(StreamSpan(after: applied, through: end))
        }
        guard state.known > applied else { return nil }
        // A gap, up to where the next known span starts (or the head). A write of ours in
        // flight may be its span, unless one of ours finished after it (ours commit in order).
        let othersAfter = state.others.keys.filter { $0 > applied }.min()
        if state.ownInFlight > 0 && ownAfter == nil { return nil }
        state.reading = true
        return .read(StreamSpan(after: applied, through: [ownAfter, othersAfter, state.known].compactMap { $0 }.min()!))
    }

    private func startRead(_ span: StreamSpan) {
        read(span) { [self] deliveredThrough in
            let retry = state.withLock { state -> Bool in
                state.reading = false
                guard let deliveredThrough else {
                    // Not read: still to do, after a pause (which `next` keeps, however soon
                    // the failure came).
                    state.others[span.after] = max(state.others[span.after] ?? span.through, span.through)
                    state.pausedUntil = MonotonicClock.milliseconds() + Int64(retryMilliseconds)
                    return true
                }
                if deliveredThrough <= span.after {
                    // The database's stream ends at the span's start: it was announced but is
                    // not there (a stray notification). What is known is what the spans say.
                    state.known = ([span.after] + state.own.values.map(\.through) + Array(state.others.values)).max()!
                    return false
                }
                state.applied = max(state.applied ?? deliveredThrough, deliveredThrough)
                // A page of a longer span: the rest is still to read.
                if deliveredThrough < span.through { state.others[deliveredThrough] = span.through }
                return false
            }
            if retry {
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(retryMilliseconds)) { [self] in pump() }
            } else {
                pump()
            }
        }
    }
}
