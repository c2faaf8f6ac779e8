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

    /// Formats microseconds since the Unix epoch.
    public static func format(epochMicroseconds: Int64) -> String {
        let milliseconds = epochMicroseconds / 1000 - (epochMicroseconds % 1000 < 0 ? 1 : 0)
        var days = milliseconds / 86_400_000
        var msOfDay = milliseconds % 86_400_000
        if msOfDay < 0 { msOfDay += 86_400_000; days -= 1 }
        let (year, month, day) = civilFromDays(days)
        func pad(_ value: Int64, _ width: Int) -> String {
            let s = String(value)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(msOfDay / 3_600_000, 2)):\(pad(msOfDay / 60_000 % 60, 2)):\(pad(msOfDay / 1000 % 60, 2)).\(pad(msOfDay % 1000, 3))Z"
    }

    /// Howard Hinnant's days-to-civil algorithm.
    static func civilFromDays(_ z: Int64) -> (Int64, Int64, Int64) {
        let z = z + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
