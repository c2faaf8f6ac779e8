#if canImport(Glibc)
import Glibc
#endif

/// The wall clock, for what people read: timestamps in the wire form and in log lines.
/// (Durations and time-outs use `MonotonicClock`, which the wall clock's steps do not move.)
public enum WallClock {
    /// Now, ISO-8601 UTC to the millisecond, `2026-11-28T19:50:00.123Z` — the form the Node
    /// server's clients read. Its digits written in place: no intermediate strings.
    public static func iso8601() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var text = Array("0000-00-00T00:00:00.000Z".utf8)
        func put(_ value: Int, at end: Int, digits: Int) {
            var value = value
            for index in stride(from: end, to: end - digits, by: -1) {
                text[index] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            }
        }
        put(Int(parts.tm_year) + 1900, at: 3, digits: 4)
        put(Int(parts.tm_mon) + 1, at: 6, digits: 2)
        put(Int(parts.tm_mday), at: 9, digits: 2)
        put(Int(parts.tm_hour), at: 12, digits: 2)
        put(Int(parts.tm_min), at: 15, digits: 2)
        put(Int(parts.tm_sec), at: 18, digits: 2)
        put(Int(spec.tv_nsec / 1_000_000), at: 22, digits: 3)
        return String(decoding: text, as: UTF8.self)
    }
}
