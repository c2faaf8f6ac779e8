import CLibPQ
import ServerRuntime
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A small set of libpq connections driven without blocking, in pipeline mode, by one thread
/// that the owner provides (`run()`), so no caller ever waits for the database. Statements
/// queue here, go to the connection with the fewest in flight, and complete on the pool's
/// thread: a completion must only hand its result on (to an event loop's queue), never block.
///
/// A broken connection fails what it had in flight with `.connectionLost` and reconnects with
/// back-off; while no connection is up, waiting statements fail with `.unavailable` after
/// `queueTimeout` (at once when every connection has just failed to connect).
public final class PostgresPool: @unchecked Sendable {
    public typealias Completion = @Sendable (Result<[PostgresRows], PostgresError>) -> Void

    public struct Configuration: Sendable {
        public var connections: Int = 4
        /// Statements sent on one connection before its results are back.
        public var maxInFlightPerConnection: Int = 32
        /// Statements allowed to wait for a connection; more are refused as `.overloaded`.
        public var maxQueued: Int = 10_000
        public var queueTimeoutMilliseconds: Int64 = 5_000
        public var applicationName: String = "swift-postgres-pool"
        /// The server cancels a statement that runs longer (SQLSTATE 57014).
        public var statementTimeoutMilliseconds: Int = 30_000

        public init() {}
    }

    private struct Job {
        let statements: [PostgresStatement]
        let completion: Completion
        let deadline: Int64
        var results: [PostgresRows] = []
        var error: PostgresError?
        /// The statement name behind each result still to come that answers a prepare (nil
        /// for an ordinary result), in the order sent.
        var expected: [String?] = []
        var expectedNext = 0
    }

    private enum State {
        case disconnected(retryAt: Int64, failed: Bool)
        case connecting(OpaquePointer, pollingFor: PostgresPollingStatusType)
        case ready(OpaquePointer)
    }

    private final class Slot {
        var state: State
        var inFlight: [Job] = []
        var inFlightHead = 0
        var backoffMilliseconds: Int64 = 100
        var awaitingNullAfterResult = false
        /// Statement names prepared on this connection.
        var prepared: Set<String> = []
        init(state: State) { self.state = state }
        var inFlightCount: Int { inFlight.count - inFlightHead }
    }

    private struct Inbox {
        var jobs: [Job] = []
        var stopping = false
    }

    private let options: PostgresConnectionOptions
    private let configuration: Configuration
    private let inbox = Locked(Inbox())
    private let wakePipe = WakePipe()
    private var slots: [Slot] = []
    private var waiting: [Job] = []
    private var waitingHead = 0

    public init(options: PostgresConnectionOptions, configuration: Configuration = Configuration()) {
        self.options = options.withSessionDefaults(applicationName: configuration.applicationName,
                                                   statementTimeoutMilliseconds: configuration.statementTimeoutMilliseconds)
        self.configuration = configuration
        slots = (0..<max(1, configuration.connections)).map { _ in Slot(state: .disconnected(retryAt: 0, failed: false)) }
    }

    /// Queues statements to run in one pipeline segment (one implicit transaction unless they
    /// say BEGIN/COMMIT themselves). Safe from any thread.
    public func submit(_ statements: [PostgresStatement], completion: @escaping Completion) {
        let job = Job(statements: statements, completion: completion, deadline: MonotonicClock.milliseconds() + configuration.queueTimeoutMilliseconds)
        let refusal: PostgresError? = inbox.withLock { inbox in
            if inbox.stopping { return PostgresError(kind: .shuttingDown, message: "the database pool is shutting down") }
            if inbox.jobs.count >= configuration.maxQueued {
                return PostgresError(kind: .overloaded, message: "too many database statements waiting")
            }
            inbox.jobs.append(job)
            return nil
        }
        if let refusal { completion(.failure(refusal)); return }
        wake()
    }

    public func submit(_ statement: PostgresStatement, completion: @escaping @Sendable (Result<PostgresRows, PostgresError>) -> Void) {
        submit([statement]) { result in completion(result.map { $0.last ?? PostgresRows(columns: [], rows: [], affectedRows: 0) }) }
    }

    /// Asks `run()` to finish: what is queued or in flight still completes, then it returns.
    public func shutdown() {
        inbox.withLock { $0.stopping = true }
        wake()
    }

    private func wake() {
        wakePipe.wake()
    }

    // MARK: - The pool's thread

    /// Drives the connections until `shutdown()` and the last statement completes.
    public func run() {
        var pollFDs: [pollfd] = []
        var polledSlots: [Int] = []
        while true {
            let now = MonotonicClock.milliseconds()
            let stopping = takeSubmissions()
            advanceConnections(now: now)
            dispatch()
            collectBufferedResults()
            expireWaiting(now: now)
            if stopping && waitingCount == 0 && slots.allSatisfy({ $0.inFlightCount == 0 }) { break }
            publishState()

            pollFDs.removeAll(keepingCapacity: true)
            polledSlots.removeAll(keepingCapacity: true)
            pollFDs.append(pollfd(fd: wakePipe.readFD, events: Int16(POLLIN), revents: 0))
            var timeout: Int64 = 1000
            for (index, slot) in slots.enumerated() {
                switch slot.state {
                case .disconnected(let retryAt, _):
                    timeout = min(timeout, max(0, retryAt - now))
                case .connecting(let connection, let pollingFor):
                    let events = pollingFor == PGRES_POLLING_WRITING ? POLLOUT : POLLIN
                    pollFDs.append(pollfd(fd: PQsocket(connection), events: Int16(events), revents: 0))
                    polledSlots.append(index)
                case .ready(let connection):
                    var events = POLLIN
                    if PQflush(connection) == 1 { events |= POLLOUT }
                    pollFDs.append(pollfd(fd: PQsocket(connection), events: Int16(events), revents: 0))
                    polledSlots.append(index)
                }
            }
            if waitingCount > 0 { timeout = min(timeout, 100) }
            _ = poll(&pollFDs, nfds_t(pollFDs.count), Int32(timeout))
            if pollFDs[0].revents != 0 { wakePipe.drain() }
            for (position, index) in polledSlots.enumerated() where pollFDs[position + 1].revents != 0 {
                service(slots[index], events: pollFDs[position + 1].revents)
            }
        }
        for slot in slots { disconnect(slot, error: nil, now: MonotonicClock.milliseconds()) }
    }

    private var waitingCount: Int { waiting.count - waitingHead }

    /// The pool as its thread last saw it (for metrics, read from any thread).
    public struct Occupancy: Sendable {
        public var connectionsReady = 0
        public var statementsWaiting = 0
        public var statementsInFlight = 0
        public init() {}
    }
    public var occupancy: Occupancy {
        var now = Occupancy()
        now.connectionsReady = publishedReady.load(ordering: .relaxed)
        now.statementsWaiting = publishedWaiting.load(ordering: .relaxed)
        now.statementsInFlight = publishedInFlight.load(ordering: .relaxed)
        return now
    }
    private let publishedReady = Atomic<Int>(0), publishedWaiting = Atomic<Int>(0), publishedInFlight = Atomic<Int>(0)

    private func publishState() {
        var ready = 0, inFlight = 0
        for slot in slots {
            if case .ready = slot.state { ready += 1 }
            inFlight += slot.inFlightCount
        }
        publishedReady.store(ready, ordering: .relaxed)
        publishedWaiting.store(waitingCount, ordering: .relaxed)
        publishedInFlight.store(inFlight, ordering: .relaxed)
    }

    private func takeSubmissions() -> Bool {
        let (jobs, stopping) = inbox.withLock { inbox -> ([Job], Bool) in
            let jobs = inbox.jobs
            inbox.jobs.removeAll(keepingCapacity: true)
            return (jobs, inbox.stopping)
        }
        waiting.append(contentsOf: jobs)
        return stopping
    }

    private func advanceConnections(now: Int64) {
        for slot in slots {
            guard case .disconnected(let retryAt, _) = slot.state, retryAt <= now else { continue }
            let connection = options.withCArrays { keys, values in PQconnectStartParams(keys, values, 1) }
            guard let connection, PQstatus(connection) != CONNECTION_BAD else {
                if let connection { PQfinish(connection) }
                markFailed(slot, now: now)
                continue
            }
            slot.state = .connecting(connection, pollingFor: PGRES_POLLING_WRITING)
        }
    }

    private func markFailed(_ slot: Slot, now: Int64) {
        slot.state = .disconnected(retryAt: now + slot.backoffMilliseconds, failed: true)
        slot.backoffMilliseconds = min(slot.backoffMilliseconds * 2, 5_000)
    }

    private func service(_ slot: Slot, events: Int16) {
        switch slot.state {
        case .disconnected:
            return
        case .connecting(let connection, _):
            let status = PQconnectPoll(connection)
            switch status {
            case PGRES_POLLING_OK:
                PQsetnonblocking(connection, 1)
                guard PQenterPipelineMode(connection) == 1 else {
                    PQfinish(connection)
                    markFailed(slot, now: MonotonicClock.milliseconds())
                    return
                }
                slot.backoffMilliseconds = 100
                slot.state = .ready(connection)
            case PGRES_POLLING_FAILED:
                PQfinish(connection)
                markFailed(slot, now: MonotonicClock.milliseconds())
            default:
                slot.state = .connecting(connection, pollingFor: status)
            }
        case .ready(let connection):
            if events & Int16(POLLOUT) != 0, PQflush(connection) == -1 {
                disconnect(slot, error: lostError(connection), now: MonotonicClock.milliseconds())
                return
            }
            if events & Int16(POLLIN | POLLERR | POLLHUP) != 0 {
                guard PQconsumeInput(connection) == 1 else {
                    disconnect(slot, error: lostError(connection), now: MonotonicClock.milliseconds())
                    return
                }
                collectResults(slot, connection: connection)
                if PQstatus(connection) == CONNECTION_BAD {
                    disconnect(slot, error: lostError(connection), now: MonotonicClock.milliseconds())
                }
            }
        }
    }

    private func lostError(_ connection: OpaquePointer) -> PostgresError {
        let text = String(cString: PQerrorMessage(connection)).trimmingTrailingNewlines()
        return PostgresError(kind: .connectionLost, message: text.isEmpty ? "connection to the database lost" : text)
    }

    /// libpq may read a connection's answers into its buffer while sending (PQflush reads
    /// too), and then poll() never reports them: they would wait for the next byte from that
    /// server, or the one-second poll time-out. So before each poll, take what is buffered.
    private func collectBufferedResults() {
        for slot in slots where slot.inFlightCount > 0 {
            guard case .ready(let connection) = slot.state else { continue }
            collectResults(slot, connection: connection)
        }
    }

    /// Reads every complete result. In pipeline mode each job's results are followed by NULL,
    /// and its segment ends with a PIPELINE_SYNC result: that is when the job completes.
    private func collectResults(_ slot: Slot, connection: OpaquePointer) {
        while slot.inFlightCount > 0, PQisBusy(connection) == 0 {
            guard let result = PQgetResult(connection) else {
                if slot.awaitingNullAfterResult { slot.awaitingNullAfterResult = false; continue }
                return
            }
            defer { PQclear(result) }
            switch PQresultStatus(result) {
            case PGRES_PIPELINE_SYNC:
                let job = slot.inFlight[slot.inFlightHead]
                slot.inFlightHead += 1
                if slot.inFlightHead == slot.inFlight.count {
                    slot.inFlight.removeAll(keepingCapacity: true)
                    slot.inFlightHead = 0
                }
                if let error = job.error { job.completion(.failure(error)) } else { job.completion(.success(job.results)) }
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
                if takeExpected(slot, succeeded: true) == nil {
                    slot.inFlight[slot.inFlightHead].results.append(PostgresRows(result: result))
                }
                slot.awaitingNullAfterResult = true
            case PGRES_PIPELINE_ABORTED:
                takeExpected(slot, succeeded: false)
                if slot.inFlight[slot.inFlightHead].error == nil {
                    slot.inFlight[slot.inFlightHead].error = PostgresError(kind: .server, message: "statement skipped after an earlier error")
                }
                slot.awaitingNullAfterResult = true
            default:
                takeExpected(slot, succeeded: false)
                if slot.inFlight[slot.inFlightHead].error == nil {
                    slot.inFlight[slot.inFlightHead].error = PostgresError(result: result)
                }
                slot.awaitingNullAfterResult = true
            }
        }
    }

    /// Moves past the result just read; for a prepare's result returns its name, forgetting
    /// it when the prepare did not succeed (it will be prepared again next time).
    @discardableResult
    private func takeExpected(_ slot: Slot, succeeded: Bool) -> String? {
        let position = slot.inFlight[slot.inFlightHead].expectedNext
        guard position < slot.inFlight[slot.inFlightHead].expected.count else { return nil }
        slot.inFlight[slot.inFlightHead].expectedNext += 1
        guard let name = slot.inFlight[slot.inFlightHead].expected[position] else { return nil }
        if !succeeded { slot.prepared.remove(name) }
        return name
    }

    private func dispatch() {
        while waitingCount > 0 {
            var best: Slot?
            for slot in slots {
                guard case .ready = slot.state, slot.inFlightCount < configuration.maxInFlightPerConnection else { continue }
                if best == nil || slot.inFlightCount < best!.inFlightCount { best = slot }
            }
            guard let slot = best, case .ready(let connection) = slot.state else { return }
            var job = waiting[waitingHead]
            waitingHead += 1
            if waitingHead == waiting.count { waiting.removeAll(keepingCapacity: true); waitingHead = 0 }
            var sent = true
            for statement in job.statements {
                var ok: Int32
                if let name = statement.preparedName {
                    if !slot.prepared.contains(name) {
                        guard PQsendPrepare(connection, name, statement.sql, Int32(statement.parameters.count), nil) == 1 else { sent = false; break }
                        slot.prepared.insert(name)
                        job.expected.append(name)
                    }
                    ok = PostgresConnection.withCParameters(statement.parameters) { count, values in
                        PQsendQueryPrepared(connection, name, count, values, nil, nil, 0)
                    }
                } else {
                    ok = PostgresConnection.withCParameters(statement.parameters) { count, values in
                        PQsendQueryParams(connection, statement.sql, count, nil, values, nil, nil, 0)
                    }
                }
                job.expected.append(nil)
                if ok != 1 { sent = false; break }
            }
            if sent { sent = PQpipelineSync(connection) == 1 }
            slot.inFlight.append(job)
            if !sent || PQflush(connection) == -1 {
                disconnect(slot, error: lostError(connection), now: MonotonicClock.milliseconds())
            }
        }
    }

    /// Fails waiting statements whose time is up, and all of them when no connection is up
    /// and the last attempt to make one failed: a caller learns at once that the database is away.
    private func expireWaiting(now: Int64) {
        guard waitingCount > 0 else { return }
        let anyUsable = slots.contains { slot in
            switch slot.state {
            case .ready, .connecting: return true
            case .disconnected(_, let failed): return !failed
            }
        }
        var kept: [Job] = []
        for index in waitingHead..<waiting.count {
            let job = waiting[index]
            if !anyUsable || job.deadline <= now {
                job.completion(.failure(PostgresError(kind: .unavailable, message: "the database is not available")))
            } else {
                kept.append(job)
            }
        }
        waiting = kept
        waitingHead = 0
    }

    private func disconnect(_ slot: Slot, error: PostgresError?, now: Int64) {
        switch slot.state {
        case .ready(let connection), .connecting(let connection, _):
            PQfinish(connection)
        case .disconnected:
            break
        }
        let failure = error ?? PostgresError(kind: .shuttingDown, message: "the database pool is shutting down")
        for index in slot.inFlightHead..<slot.inFlight.count { slot.inFlight[index].completion(.failure(failure)) }
        slot.inFlight.removeAll()
        slot.inFlightHead = 0
        slot.awaitingNullAfterResult = false
        slot.prepared.removeAll()
        slot.state = .disconnected(retryAt: now + slot.backoffMilliseconds, failed: false)
        slot.backoffMilliseconds = min(slot.backoffMilliseconds * 2, 5_000)
    }
}
