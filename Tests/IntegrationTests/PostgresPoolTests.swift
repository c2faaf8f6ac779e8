import Foundation
import PostgresClient
import XCTest

/// The pool against a real PostgreSQL: prepared statements (prepared once per connection,
/// again after a reconnect, forgotten when the prepare fails) and result positions when a
/// segment mixes prepared and ordinary statements.
final class PostgresPoolTests: XCTestCase {
    private var pool: PostgresPool!
    private var thread: Thread!
    private var database: TestDatabase!

    override func setUpWithError() throws {
        let environment = try TestEnvironment.current()
        database = try environment.createDatabase("pool")
        var configuration = PostgresPool.Configuration()
        configuration.connections = 2
        configuration.applicationName = "pool-test"
        pool = PostgresPool(options: .url(database.url), configuration: configuration)
        let pool = self.pool!
        thread = Thread { pool.run() }
        thread.start()
    }

    override func tearDown() {
        pool?.shutdown()
    }

    private func run(_ statements: [PostgresStatement]) -> Result<[PostgresRows], PostgresError> {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: Result<[PostgresRows], PostgresError>?
        pool.submit(statements) { result in
            outcome = result
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        return outcome ?? .failure(PostgresError(kind: .unavailable, message: "timed out"))
    }

    private let square = "SELECT ($1::int * $1::int)::text AS square"

    func testAPreparedStatementIsReusedAndPreparedAgainAfterReconnecting() throws {
        for value in 1...20 {
            let rows = try run([PostgresStatement(square, [String(value)], preparedName: "square")]).get()
            XCTAssertEqual(rows.first?.value(0, "square"), String(value * value))
        }
        let admin = try database.connect()
        let killed = try admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pool-test'")
        XCTAssertEqual(killed.count, 2, "both pool connections were up")
        // The first calls may see the lost connections; then new ones prepare it again.
        var answers: [String] = []
        for value in 1...40 {
            switch run([PostgresStatement(square, [String(value)], preparedName: "square")]) {
            case .success(let rows): answers.append(rows.first?.value(0, "square") ?? "none")
            case .failure(let error): XCTAssertTrue([.connectionLost, .unavailable].contains(error.kind), "\(error)")
            }
            usleep(20_000)
        }
        XCTAssertEqual(Array(answers.suffix(10)), (31...40).map { String($0 * $0) })
    }

    func testAFailedPrepareIsForgottenAndFailsTheSameWayEachTime() {
        for _ in 0..<3 {
            switch run([PostgresStatement("SELECT no_such_column FROM pg_class", [], preparedName: "broken")]) {
            case .success: XCTFail("a broken statement succeeded")
            case .failure(let error):
                XCTAssertEqual(error.kind, .server)
                XCTAssertEqual(error.sqlState, "42703", "undefined column, not 'prepared statement already exists': \(error)")
            }
        }
        XCTAssertEqual(try run([PostgresStatement(square, ["7"], preparedName: "square")]).get().first?.value(0, "square"), "49")
    }

    func testResultsKeepTheirPositionsWhenPreparedAndOrdinaryStatementsMix() throws {
        for round in 0..<3 {
            let rows = try run([
                PostgresStatement("SELECT 'first'::text AS v"),
                PostgresStatement(square, ["3"], preparedName: "square"),
                PostgresStatement("SELECT $1::text AS v", ["third \(round)"]),
                PostgresStatement("SELECT ($1::int + 1)::text AS v", ["41"], preparedName: "increment"),
            ]).get()
            XCTAssertEqual(rows.count, 4)
            XCTAssertEqual(rows[0].value(0, "v"), "first")
            XCTAssertEqual(rows[1].value(0, "square"), "9")
            XCTAssertEqual(rows[2].value(0, "v"), "third \(round)")
            XCTAssertEqual(rows[3].value(0, "v"), "42")
        }
    }

    func testRowsCopiedOutOfLibpqKeepNullsEmptyStringsAndEveryByte() throws {
        let rows = try run([PostgresStatement("""
            SELECT n::text AS n, CASE WHEN n % 3 = 0 THEN NULL WHEN n % 3 = 1 THEN '' ELSE repeat('é😀', n) END AS text
            FROM generate_series(1, 5000) n
            """)]).get()[0]
        XCTAssertEqual(rows.count, 5000)
        for row in 0..<rows.count {
            let n = row + 1
            XCTAssertEqual(rows.int64(row, 0), Int64(n))
            XCTAssertEqual(rows.value(row, "text"), n % 3 == 0 ? nil : n % 3 == 1 ? "" : String(repeating: "é😀", count: n))
        }
    }
}
