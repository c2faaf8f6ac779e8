/// A place in a user's stream, as clients hold it: an opaque string made from the sequence of
/// the last message they have (`c` and the sequence in base 36, so `c0` is the very start).
/// Sequences are shared by all users, so a cursor of another user's names a place, never a
/// message: reading after it still reads only the caller's own stream.
public enum StreamCursor {
    /// The cursor before every message.
    public static let start = "c0"

    public static func encode(_ seq: Int64) -> String {
        var bytes: [UInt8] = []
        write(seq, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the cursor's bytes (no quotes): every message's packets carry one, written
    /// without a `String` in between.
    public static func write(_ seq: Int64, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "c"))
        let value = UInt64(max(seq, 0))
        // Most significant digit first: the largest power of 36 not above the value.
        var power: UInt64 = 1
        while value / power >= 36 { power *= 36 }
        var rest = value
        while true {
            let digit = UInt8(rest / power)
            out.append(digit < 10 ? digit + UInt8(ascii: "0") : digit - 10 + UInt8(ascii: "a"))
            rest %= power
            if power == 1 { break }
            power /= 36
        }
    }

    /// The sequence a cursor names; nil for anything this server does not make.
    public static func decode(_ text: String) -> Int64? {
        let utf8 = text.utf8
        // "c" and 1…13 base-36 digits: 36^13 > Int64.max, so longer is never ours.
        guard utf8.count >= 2, utf8.count <= 14, utf8.first == UInt8(ascii: "c") else { return nil }
        var value: Int64 = 0
        for byte in utf8.dropFirst() {
            let digit: Int64
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = Int64(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): digit = Int64(byte - UInt8(ascii: "a")) + 10
            default: return nil
            }
            let (product, overflow1) = value.multipliedReportingOverflow(by: 36)
            let (sum, overflow2) = product.addingReportingOverflow(digit)
            guard !overflow1, !overflow2 else { return nil }
            value = sum
        }
        // One spelling per place: no leading zeros.
        guard encode(value) == text else { return nil }
        return value
    }
}
