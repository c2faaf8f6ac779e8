import CLinux
import Synchronization

/// A request's id, in its log line and in the `X-Request-Id` header of its answer: the one the
/// client or a proxy in front sent when it is sane (so one id follows a request through
/// nginx and here), else one made here: a random prefix per process and a counter from a
/// random start, short enough (15 characters) that Swift keeps it in the string itself,
/// without an allocation.
public enum RequestID {
    static let maxLength = 128

    public static func of(header: String?) -> String {
        guard let header, (1...maxLength).contains(header.utf8.count), header.utf8.allSatisfy(isAllowed) else { return make() }
        return header
    }

    /// Letters, digits and `-_.:/+=@`: what ids made by proxies and tracers use, and nothing
    /// that could break a log line.
    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "+"),
             UInt8(ascii: "="), UInt8(ascii: "@"): return true
        default: return false
        }
    }

    /// 6 hexadecimal digits chosen at random when the process starts, then a counter in 9
    /// that starts at random too: two runs that drew the same prefix still count apart.
    private static let processPrefix = hex(random() & 0xFF_FFFF, digits: 6)
    private static let counter = Atomic<UInt64>(random())

    private static func random() -> UInt64 {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { getrandom($0.baseAddress, $0.count, 0) }
        return value
    }

    public static func make() -> String {
        processPrefix + hex(counter.add(1, ordering: .relaxed).newValue & 0xF_FFFF_FFFF, digits: 9)
    }

    private static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.utf8.count)) + text
    }
}
