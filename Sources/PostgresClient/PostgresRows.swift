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

/// The rows a statement returned, copied out of libpq, in text format: every value's bytes in
/// one buffer, made a `String` only when asked for (a row used to be an array of strings, one
/// per value, and numbers were parsed from those strings).
public struct PostgresRows: Sendable {
    public let columns: [String]
    public let count: Int
    /// Rows affected, for INSERT/UPDATE/DELETE (`PQcmdTuples`).
    public let affectedRows: Int
    private let bytes: [UInt8]
    /// Per value, row by row: where it starts in `bytes` and its length, -1 for NULL.
    private let starts: [Int]
    private let lengths: [Int32]

    public init(columns: [String], rows: [[String?]], affectedRows: Int) {
        var bytes: [UInt8] = [], starts: [Int] = [], lengths: [Int32] = []
        for row in rows {
            precondition(row.count == columns.count, "a row of \(row.count) values for \(columns.count) columns")
            for value in row {
                starts.append(bytes.count)
                if let value {
                    bytes.append(contentsOf: value.utf8)
                    lengths.append(Int32(value.utf8.count))
                } else {
                    lengths.append(-1)
                }
            }
        }
        self.columns = columns
        self.count = rows.count
        self.affectedRows = affectedRows
        self.bytes = bytes
        self.starts = starts
        self.lengths = lengths
    }

    public var isEmpty: Bool { count == 0 }

    /// Every row's values as strings (tests and small results; a loop over many rows is
    /// cheaper with `value(_:_:)` by column index).
    public var rows: [[String?]] {
        (0..<count).map { row in (0..<columns.count).map { value(row, $0) } }
    }

    public func columnIndex(_ name: String) -> Int? { columns.firstIndex(of: name) }

    /// The value of `column` in row `row`, or nil for NULL, an unknown column or a row that is
    /// not there.
    public func value(_ row: Int, _ column: String) -> String? {
        guard let index = columnIndex(column) else { return nil }
        return value(row, index)
    }

    /// The value in column number `column` of row `row`, or nil for NULL or no such value.
    public func value(_ row: Int, _ column: Int) -> String? {
        withValue(row, column) { $0.map { String(decoding: $0, as: UTF8.self) } }
    }

    /// The value in column number `column` of row `row` as a whole number; nil for NULL or text
    /// that is not one (PostgreSQL's text form of bigint: an optional minus, then digits).
    public func int64(_ row: Int, _ column: Int) -> Int64? {
        withValue(row, column) { value -> Int64? in
            guard let value, !value.isEmpty else { return nil }
            let negative = value[0] == UInt8(ascii: "-")
            let digits = negative ? value[1...] : value[...]
            guard !digits.isEmpty, digits.count <= 19 else { return nil }
            // Counted below zero, where Int64 reaches one further (-9223372036854775808).
            var result: Int64 = 0
            for byte in digits {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                let (times10, overflowed) = result.multipliedReportingOverflow(by: 10)
                let (sum, overflowedAgain) = times10.subtractingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
                guard !overflowed, !overflowedAgain else { return nil }
                result = sum
            }
            if negative { return result }
            return result == .min ? nil : -result
        }
    }

    /// Whether the value in column number `column` of row `row` is `text` (false for NULL),
    /// without making a string of it.
    public func value(_ row: Int, _ column: Int, equals text: String) -> Bool {
        withValue(row, column) { value in
            guard let value else { return false }
            var text = text
            return text.withUTF8 { $0.elementsEqual(value) }
        }
    }

    /// The bytes of a value (nil for NULL, and where there is no such row or column: `value(0, …)`
    /// asks for the first row if there is one), valid only inside `body`.
    public func withValue<Result>(_ row: Int, _ column: Int, _ body: (UnsafeBufferPointer<UInt8>?) throws -> Result) rethrows -> Result {
        guard row >= 0, row < count, column >= 0, column < columns.count else { return try body(nil) }
        let cell = row * columns.count + column
        let length = Int(lengths[cell])
        guard length >= 0 else { return try body(nil) }
        return try bytes.withUnsafeBufferPointer { all in
            try body(UnsafeBufferPointer(rebasing: all[starts[cell]..<starts[cell] + length]))
        }
    }

    init(result: OpaquePointer) {
        let fieldCount = Int(PQnfields(result))
        let tupleCount = Int(PQntuples(result))
        columns = (0..<fieldCount).map { String(cString: PQfname(result, Int32($0))) }
        var total = 0
        var lengths: [Int32] = []
        lengths.reserveCapacity(fieldCount * tupleCount)
        for r in 0..<Int32(tupleCount) {
            for c in 0..<Int32(fieldCount) {
                let length = PQgetisnull(result, r, c) == 1 ? -1 : PQgetlength(result, r, c)
                lengths.append(length)
                total += Int(max(0, length))
            }
        }
        var starts: [Int] = []
        starts.reserveCapacity(lengths.count)
        let bytes = [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            var offset = 0
            for r in 0..<Int32(tupleCount) {
                for c in 0..<Int32(fieldCount) {
                    starts.append(offset)
                    let length = Int(lengths[Int(r) * fieldCount + Int(c)])
                    guard length > 0 else { continue }
                    let value = UnsafeRawPointer(PQgetvalue(result, r, c)!)  // char *, bytes as sent
                    UnsafeMutableRawPointer(buffer.baseAddress! + offset).copyMemory(from: value, byteCount: length)
                    offset += length
                }
            }
            initialized = offset
        }
        self.bytes = bytes
        self.starts = starts
        self.lengths = lengths
        count = tupleCount
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
