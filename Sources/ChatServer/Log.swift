#if canImport(Glibc)
import Glibc
#endif

/// One line per event on standard error, with a level; `LOG_LEVEL` picks the lowest shown.
enum Log {
    enum Level: Int, Comparable {
        case debug, info, warning, error
        static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        var label: String { ["debug", "info", "warning", "error"][rawValue] }
    }

    nonisolated(unsafe) static var minimumLevel: Level = .info

    static func debug(_ message: @autoclosure () -> String) { write(.debug, message) }
    static func info(_ message: @autoclosure () -> String) { write(.info, message) }
    static func warning(_ message: @autoclosure () -> String) { write(.warning, message) }
    static func error(_ message: @autoclosure () -> String) { write(.error, message) }

    private static func write(_ level: Level, _ message: () -> String) {
        guard level >= minimumLevel else { return }
        let line = "[\(level.label)] \(message())\n"
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
