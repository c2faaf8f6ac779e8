/// Timestamps as the Node server's clients see them: ISO-8601 UTC with milliseconds,
/// `2026-01-16T17:04:58.123Z` (what node-pg and `JSON.stringify` of a Date give).
public enum Timestamps {
    /// Converts PostgreSQL's ISO text for a `timestamp` (`2026-01-16 17:04:58.123456`, read
    /// in a UTC session) to the wire form, truncating to milliseconds as a JavaScript Date does.
    /// Text of another shape (`infinity`, BC dates) is returned unchanged.
    public static func fromPostgres(_ text: String) -> String {
        let bytes = Array(text.utf8)
        guard bytes.count >= 19, bytes[10] == UInt8(ascii: " ") || bytes[10] == UInt8(ascii: "T"),
              bytes[4] == UInt8(ascii: "-"), bytes[13] == UInt8(ascii: ":")
        else { return text }
        var out = Array(bytes[0..<10])
        out.append(UInt8(ascii: "T"))
        out.append(contentsOf: bytes[11..<19])
        out.append(UInt8(ascii: "."))
        var fraction: [UInt8] = []
        var index = 19
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                if fraction.count < 3 { fraction.append(bytes[index]) }
                index += 1
            }
        }
        // A zone suffix (from a timestamptz column) must be +00 in a UTC session.
        let rest = bytes[index...]
        guard rest.isEmpty || rest.elementsEqual("+00".utf8) else { return text }
        while fraction.count < 3 { fraction.append(UInt8(ascii: "0")) }
        out.append(contentsOf: fraction)
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }
}
