/// PostgreSQL array literals for passing many values in one text parameter (`$1::uuid[]`,
/// `$2::text[]`): every element quoted, `"` and `\` escaped. Built on UTF-8 bytes: the
/// message writer runs it for every message of every batch.
public enum PostgresArrayLiteral {
    public static func text(_ values: [String]) -> String {
        text(values.lazy.map(Optional.some), count: values.count)
    }

    /// With NULL for each nil.
    public static func text(_ values: [String?]) -> String {
        text(values.lazy, count: values.count)
    }

    private static func text(_ values: some Sequence<String?>, count: Int) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(count * 40 + 2)
        var first = true
        for value in values {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            guard var value else {
                out.append(contentsOf: "NULL".utf8)
                continue
            }
            out.append(UInt8(ascii: "\""))
            value.withUTF8 { utf8 in
                var runStart = 0
                for index in 0..<utf8.count where utf8[index] == UInt8(ascii: "\"") || utf8[index] == UInt8(ascii: "\\") {
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                    out.append(UInt8(ascii: "\\"))
                    runStart = index
                }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
            }
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}
