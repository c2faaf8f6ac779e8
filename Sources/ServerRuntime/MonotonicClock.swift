#if canImport(Glibc)
import Glibc
#endif

/// The one clock for time-outs and durations: CLOCK_MONOTONIC, which never steps back when
/// the wall clock is set.
public enum MonotonicClock {
    public static func milliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    public static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Checks `done` every 5 ms until it is true (then true) or `milliseconds` have passed
    /// (then false). For shutdown, on a thread that has nothing else to do meanwhile.
    public static func wait(upTo milliseconds: Int64, until done: () -> Bool) -> Bool {
        let deadline = Self.milliseconds() + milliseconds
        while true {
            if done() { return true }
            if Self.milliseconds() >= deadline { return false }
            var pause = timespec(tv_sec: 0, tv_nsec: 5_000_000)
            nanosleep(&pause, nil)
        }
    }
}
