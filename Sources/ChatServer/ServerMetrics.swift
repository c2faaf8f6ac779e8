import CoreMetrics
import PostgresClient
import Prometheus
import ServerRuntime

/// What `GET /metrics` serves, in Prometheus's text format (README, Operations). The layers
/// count through swift-metrics (so another backend can be bootstrapped instead); this
/// process's backend is swift-prometheus. Counts on the message path are per batch or per
/// refusal, never per stored message; values that are states (sessions open, messages
/// waiting) are read when scraped, at no cost in between.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let sessions, webSocketSessions, pollingSessions, connectedSessions, handshakingSessions, connectedSockets: Prometheus.Gauge
    private let undelivered, queued, overloaded: Prometheus.Gauge
    private let poolReady, poolWaiting, poolInFlight, hashing: Prometheus.Gauge

    /// The states `/metrics` reads when scraped.
    struct Snapshot {
        var sessions = 0, webSocketSessions = 0, connectedSockets = 0, queued = 0, overloaded = false, undelivered: Int64 = 0
        var pool = PostgresPool.Occupancy(), hashingPending = 0
    }

    /// Becomes swift-metrics' backend (once per process).
    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["chat_write_commit_seconds"] =
            [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
             .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1)]
        factory.durationHistogramBuckets["chat_delivery_seconds"] =
            [.microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
             .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100), .seconds(1)]
        factory.valueHistogramBuckets["chat_write_batch_messages"] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000]
        factory.valueHistogramBuckets["chat_resume_replayed_events"] = [0, 1, 5, 10, 50, 100, 500, 1000, 5000, 10000]
        MetricsSystem.bootstrap(factory)
        MessageRefusal.registerAll()
        ResumeMetrics.registerAll()
        DeliveryMetrics.registerAll()
        RateLimitMetrics.registerAll()
        let registry = self.registry
        func gauge(_ name: String, _ unit: String, _ help: String) -> Prometheus.Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: unit, helpText: help))
        }
        sessions = gauge("engineio_sessions", "", "Engine.IO sessions (Socket.IO connections, either transport) open")
        let byTransport = MetricNameDescriptor(metricName: "engineio_sessions_by_transport", unitName: "", helpText: "Engine.IO sessions open, by transport")
        webSocketSessions = registry.makeGauge(descriptor: byTransport, labels: [("transport", "websocket")])
        pollingSessions = registry.makeGauge(descriptor: byTransport, labels: [("transport", "polling")])
        let byState = MetricNameDescriptor(metricName: "engineio_sessions_by_state", unitName: "",
                                           helpText: "Engine.IO sessions open, by state: connected (a Socket.IO socket in), handshaking (not yet, or refused and closing)")
        connectedSessions = registry.makeGauge(descriptor: byState, labels: [("state", "connected")])
        handshakingSessions = registry.makeGauge(descriptor: byState, labels: [("state", "handshaking")])
        connectedSockets = gauge("socketio_connections", "", "Socket.IO sockets connected (past CONNECT, a user signed in)")
        undelivered = gauge("chat_stream_undelivered", "places",
                            "Places of the stream committed (by any process) but not yet delivered here: the notification lag")
        queued = gauge("chat_writer_queued", "messages", "Messages waiting to be written")
        overloaded = gauge("chat_writer_overloaded", "", "1 from when the queue reaches the mark until its paused senders are resumed (the writer is behind)")
        poolReady = gauge("postgres_pool_connections_ready", "", "Pool connections connected and ready")
        poolWaiting = gauge("postgres_pool_waiting", "statements", "Statements waiting for a pool connection")
        poolInFlight = gauge("postgres_pool_in_flight", "statements", "Statements sent, their results not in yet")
        hashing = gauge("chat_password_hashing_pending", "", "bcrypt jobs (logins, registrations) waiting or running")
    }

    /// The exposition, with the states read now.
    func render(_ now: Snapshot) -> [UInt8] {
        sessions.set(to: Double(now.sessions))
        webSocketSessions.set(to: Double(now.webSocketSessions))
        pollingSessions.set(to: Double(max(0, now.sessions - now.webSocketSessions)))
        // The chat has one namespace, so a session holds at most one socket.
        connectedSessions.set(to: Double(min(now.connectedSockets, now.sessions)))
        handshakingSessions.set(to: Double(max(0, now.sessions - now.connectedSockets)))
        connectedSockets.set(to: Double(now.connectedSockets))
        undelivered.set(to: Double(now.undelivered))
        queued.set(to: Double(now.queued))
        overloaded.set(to: now.overloaded ? 1 : 0)
        poolReady.set(to: Double(now.pool.connectionsReady))
        poolWaiting.set(to: Double(now.pool.statementsWaiting))
        poolInFlight.set(to: Double(now.pool.statementsInFlight))
        hashing.set(to: Double(now.hashingPending))
        var buffer: [UInt8] = []
        buffer.reserveCapacity(8_192)
        registry.emit(into: &buffer)
        return buffer
    }
}

/// Why a message was not stored, as `chat_messages_refused_total{reason}` counts it.
enum MessageRefusal: String, CaseIterable {
    case invalid, blocked, rateLimited = "rate_limited", overloaded, shuttingDown = "shutting_down", unknownReceiver = "unknown_receiver",
         storeUnavailable = "store_unavailable", storeFailed = "store_failed"

    /// One counter per reason, made at first use (after `ServerMetrics` bootstrapped the backend).
    private static let counters: [MessageRefusal: CoreMetrics.Counter] = Dictionary(uniqueKeysWithValues: allCases.map {
        ($0, Counter(label: "chat_messages_refused_total", dimensions: [("reason", $0.rawValue)]))
    })

    func count() { Self.counters[self]?.increment() }

    /// Every reason's counter made now, so each is in the exposition (at 0) from the start.
    static func registerAll() { _ = counters }
}

/// `http_requests_total{route, status}` for the REST API and the pages: the route as a template
/// (`APIRouter.routeWords` kept, an id `:id`; a path that is no route is `unmatched`), so the
/// series stay few whatever clients send.
enum HTTPRequestMetrics {
    private static let counters = Locked<[String: CoreMetrics.Counter]>([:])

    static func count(route: String, status: Int) {
        let key = route + " " + String(status)
        let counter = counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = CoreMetrics.Counter(label: "http_requests_total", dimensions: [("route", route), ("status", String(status))])
            counters[key] = counter
            return counter
        }
        counter.increment()
    }
}

/// Connection state recovery: `chat_resumes_total{outcome}` (recovered, or not: the client
/// then starts afresh and syncs) and `chat_resume_replayed_events` (events each recovery
/// replayed).
enum ResumeMetrics {
    private static let recovered = CoreMetrics.Counter(label: "chat_resumes_total", dimensions: [("outcome", "recovered")])
    private static let notRecovered = CoreMetrics.Counter(label: "chat_resumes_total", dimensions: [("outcome", "not_recovered")])
    private static let replayed = CoreMetrics.Recorder(label: "chat_resume_replayed_events")

    static func count(replayedEvents: Int?) {
        guard let replayedEvents else { return notRecovered.increment() }
        recovered.increment()
        replayed.record(replayedEvents)
    }

    static func registerAll() {
        _ = (recovered, notRecovered, replayed)
    }
}
