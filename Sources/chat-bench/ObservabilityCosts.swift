import CoreMetrics
import Logging
import Prometheus
import ServerLogging
import ServerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// `chat-bench --costs`: what one log line and one metrics update cost, measured here in a
/// loop on one thread, through the same swift-log handler and swift-prometheus backend the
/// server installs. Log lines go to /dev/null for the measurement (a pipe or a terminal
/// costs its reader's share on top).
enum ObservabilityCosts {
    static func run() {
        LogLineHandler.bootstrap()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()))

        let logger = Logger(label: "chat.http")
        let fields: () -> Logger.Metadata = {
            ["method": "GET", "path": "/api/conversations", "status": .stringConvertible(200), "duration_ms": .stringConvertible(1.234),
             "bytes": .stringConvertible(512), "client": "127.0.0.1", "user": "c3a12796-90b6-424c-8235-51c013e34f41",
             "request_id": "b0fb75000000004"]
        }
        let standardError = dup(2)
        let devNull = open("/dev/null", O_WRONLY)
        dup2(devNull, 2)
        var figures: [(String, Double)] = []
        for format in LogLineHandler.Format.allCases {
            LogLineHandler.configure(level: .info, format: format)
            figures.append(("a request line, \(format.rawValue), written", nanoseconds(per: 200_000) { logger.info("request", metadata: fields()) }))
        }
        LogLineHandler.configure(level: .warning, format: .text)
        figures.append(("a request line below LOG_LEVEL (skipped)", nanoseconds(per: 2_000_000) { logger.info("request", metadata: fields()) }))
        dup2(standardError, 2)
        close(devNull)
        close(standardError)

        let counter = Counter(label: "bench_counter")
        let labelled = Counter(label: "bench_refused", dimensions: [("reason", "rate_limited")])
        let histogram = Recorder(label: "bench_histogram")
        let timer = Timer(label: "bench_timer")
        figures.append(("a counter add (per batch: stored messages)", nanoseconds(per: 5_000_000) { counter.increment(by: 3) }))
        figures.append(("a labelled counter add (per refusal)", nanoseconds(per: 5_000_000) { labelled.increment() }))
        figures.append(("a histogram record (per batch: its size)", nanoseconds(per: 2_000_000) { histogram.record(42) }))
        figures.append(("a duration histogram record (per batch: commit time)", nanoseconds(per: 2_000_000) { timer.recordNanoseconds(1_500_000) }))
        figures.append(("finding a labelled counter (per REST request)", nanoseconds(per: 500_000) {
            Counter(label: "bench_http_requests_total", dimensions: [("route", "/api/sync"), ("status", "200")]).increment()
        }))
        for (name, value) in figures {
            print("costs: \(name): \(String(format: "%.0f", value)) ns")
        }
    }

    /// The mean time of `body` over `count` runs, after a tenth as many to warm up.
    private static func nanoseconds(per count: Int, _ body: () -> Void) -> Double {
        for _ in 0..<(count / 10) { body() }
        let start = MonotonicClock.nanoseconds()
        for _ in 0..<count { body() }
        return Double(MonotonicClock.nanoseconds() - start) / Double(count)
    }
}
