import CLibPQ

/// One libpq connection used synchronously: for start-up work (applying the schema), tools
/// and tests. The server's request path never uses it; it goes through `PostgresPool`.
public final class PostgresConnection {
    private let connection: OpaquePointer

    public static func connect(_ options: PostgresConnectionOptions) throws(PostgresError) -> PostgresConnection {
        let pointer = options.withCArrays { keys, values in PQconnectdbParams(keys, values, 1) }
        guard let pointer else { throw PostgresError(kind: .connectionFailed, message: "out of memory") }
        guard PQstatus(pointer) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(pointer)).trimmingTrailingNewlines()
            PQfinish(pointer)
            throw PostgresError(kind: .connectionFailed, message: message)
        }
        return PostgresConnection(connection: pointer)
    }

    private init(connection: OpaquePointer) {
        self.connection = connection
    }

    deinit { PQfinish(connection) }

    /// Runs one or more statements given as plain SQL text, without parameters: a schema file.
    public func executeScript(_ sql: String) throws(PostgresError) {
        let result = PQexec(connection, sql)
        defer { PQclear(result) }
        try Self.check(result, connection: connection)
    }

    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> PostgresRows {
        let result = Self.withCParameters(parameters) { count, values in
            PQexecParams(connection, sql, count, nil, values, nil, nil, 0)
        }
        defer { PQclear(result) }
        try Self.check(result, connection: connection)
        return PostgresRows(result: result!)
    }


    static func check(_ result: OpaquePointer?, connection: OpaquePointer) throws(PostgresError) {
        guard let result else {
            throw PostgresError(kind: .connectionLost, message: String(cString: PQerrorMessage(connection)).trimmingTrailingNewlines())
        }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return
        default:
            throw PostgresError(result: result)
        }
    }

    static func withCParameters<R>(_ parameters: [String?], _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
        let copies = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { copies.forEach { free($0) } }
        let pointers = copies.map { UnsafePointer($0) }
        return pointers.withUnsafeBufferPointer { body(Int32(parameters.count), $0.baseAddress) }
    }
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var copy = self
        while copy.last == "\n" || copy.last == "\r" { copy.removeLast() }
        return copy
    }
}

#if canImport(Glibc)
import Glibc
#endif
