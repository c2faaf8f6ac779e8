import CLibPQ

/// A statement with its parameters, always sent apart from the SQL text ($1, $2, …).
/// Parameters travel in text format; nil is SQL NULL.
public struct PostgresStatement: Sendable {
    public let sql: String
    public let parameters: [String?]
    /// When set, `PostgresPool` prepares the statement under this name once per connection
    /// and then only executes it: no parsing and planning per call (about 0.1 ms for the
    /// message insert). One name, one SQL text.
    public let preparedName: String?

    public init(_ sql: String, _ parameters: [String?] = [], preparedName: String? = nil) {
        self.sql = sql
        self.parameters = parameters
        self.preparedName = preparedName
    }
}

/// The rows a statement returned, copied out of libpq, in text format.
public struct PostgresRows: Sendable {
    public let columns: [String]
    public let rows: [[String?]]
    /// Rows affected, for INSERT/UPDATE/DELETE (`PQcmdTuples`).
    public let affectedRows: Int

    public init(columns: [String], rows: [[String?]], affectedRows: Int) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
    }

    public var count: Int { rows.count }
    public var isEmpty: Bool { rows.isEmpty }

    public func columnIndex(_ name: String) -> Int? { columns.firstIndex(of: name) }

    /// The value of `column` in row `row`, or nil for NULL or an unknown column.
    public func value(_ row: Int, _ column: String) -> String? {
        guard let index = columnIndex(column) else { return nil }
        return rows[row][index]
    }

    init(result: OpaquePointer) {
        let fieldCount = Int(PQnfields(result))
        let tupleCount = Int(PQntuples(result))
        columns = (0..<fieldCount).map { String(cString: PQfname(result, Int32($0))) }
        var rows: [[String?]] = []
        rows.reserveCapacity(tupleCount)
        for r in 0..<tupleCount {
            var row: [String?] = []
            row.reserveCapacity(fieldCount)
            for c in 0..<fieldCount {
                if PQgetisnull(result, Int32(r), Int32(c)) == 1 {
                    row.append(nil)
                } else {
                    let length = Int(PQgetlength(result, Int32(r), Int32(c)))
                    let pointer = PQgetvalue(result, Int32(r), Int32(c))!
                    row.append(pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
                        String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
                    })
                }
            }
            rows.append(row)
        }
        self.rows = rows
        affectedRows = Int(String(cString: PQcmdTuples(result))) ?? 0
    }
}

extension PostgresError {
    /// The error a failed result carries, SQLSTATE included.
    init(result: OpaquePointer) {
        let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        let primary = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
        let message = primary ?? String(cString: PQresultErrorMessage(result))
        self.init(kind: .server, sqlState: state, message: message)
    }
}
