// ServerLogging: where the server's swift-log records go — one line each on standard error,
// readable text or JSON (LOG_FORMAT), from LOG_LEVEL up. The other modules only log through
// swift-log's `Logger`, so an application embedding them can bootstrap its own handler.
//
// May import: swift-log, JSON, ServerRuntime (its clock), Glibc and Synchronization.

#if canImport(Glibc)
import Glibc
#endif
import JSON
import Logging
import ServerRuntime
import Synchronization

/// A swift-log handler writing one line per record to standard error with a single write(2),
/// so lines of different threads never mix. Nothing in a record is trusted: control
/// characters are escaped in both formats, so a value can never start a line of its own.
public struct LogLineHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable {
        /// `2026-11-28T19:50:00.123Z info chat.http: request method=GET path=/api/sync status=200 …`
        case text
        /// `{"time":"…","level":"info","logger":"chat.http","message":"request","method":"GET",…}`
        case json
    }

    // The process's level and format. They are set once the settings are read, after the
    // handler is installed (a bad setting is itself logged), hence process-wide atomics.
    private static let levelIndex = Atomic<Int>(Self.index(of: .info))
    private static let formatIsJSON = Atomic<Bool>(false)
    private static let installed = Atomic<Bool>(false)

    /// Installs this handler for every `Logger` made from now on; once per process (later
    /// calls do nothing). Call it before anything makes a `Logger`.
    public static func bootstrap() {
        guard !installed.exchange(true, ordering: .relaxed) else { return }
        LoggingSystem.bootstrap { LogLineHandler(label: $0) }
    }

    public static func configure(level: Logger.Level, format: Format) {
        levelIndex.store(index(of: level), ordering: .relaxed)
        formatIsJSON.store(format == .json, ordering: .relaxed)
    }

    private static let levels = Logger.Level.allCases
    private static func index(of level: Logger.Level) -> Int { levels.firstIndex(of: level)! }

    public let label: String
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    /// Set on one `Logger` (`logger.logLevel = …`), it wins over LOG_LEVEL for that logger.
    private var ownLevel: Logger.Level?

    public init(label: String) { self.label = label }

    public var logLevel: Logger.Level {
        get { ownLevel ?? Self.levels[Self.levelIndex.load(ordering: .relaxed)] }
        set { ownLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        // Merged only when there is something to merge: usually the record's own fields alone.
        var fields = event.metadata ?? [:]
        if !metadata.isEmpty { fields.merge(metadata) { own, _ in own } }
        if let provided = metadataProvider?.get() { fields.merge(provided) { own, _ in own } }
        if let error = event.error { fields["error"] = .string(String(describing: error)) }
        let format: Format = Self.formatIsJSON.load(ordering: .relaxed) ? .json : .text
        var line = Self.line(time: WallClock.iso8601(), level: event.level, label: label, message: event.message.description,
                             metadata: fields, format: format)
        line.withUnsafeMutableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if written > 0 { offset += written } else if written < 0 && errno == EINTR { continue } else { return }
            }
        }
    }

    // MARK: - Lines

    /// The fields a reader looks for first, in this order in a line; any others follow sorted.
    static let leadingKeys = ["method", "path", "status", "duration_ms", "bytes", "client", "user", "sid", "transport", "reason", "request_id"]

    /// One record as a line, newline included.
    public static func line(time: String, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata,
                            format: Format) -> [UInt8] {
        var fields: [(key: String, value: Logger.Metadata.Value)] = []
        fields.reserveCapacity(metadata.count)
        for key in leadingKeys { if let value = metadata[key] { fields.append((key, value)) } }
        if fields.count < metadata.count {
            fields += metadata.filter { !leadingKeys.contains($0.key) }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
        var out: [UInt8] = []
        out.reserveCapacity(128 + metadata.count * 32)
        switch format {
        case .json:
            var members: [(key: String, value: JSONValue)] = [("time", .string(time)), ("level", .string(level.rawValue)),
                                                              ("logger", .string(label)), ("message", .string(message))]
            members.reserveCapacity(4 + fields.count)
            for field in fields where !["time", "level", "logger", "message"].contains(field.key) { members.append((field.key, json(field.value))) }
            JSONWriter.write(.object(JSONObject(members)), into: &out)
        case .text:
            out.append(contentsOf: time.utf8)
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: level.rawValue.utf8)
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: label.utf8)
            out.append(contentsOf: ": ".utf8)
            appendEscaped(message, quoted: false, to: &out)
            for (key, value) in fields {
                out.append(UInt8(ascii: " "))
                appendEscaped(key, quoted: false, to: &out)
                out.append(UInt8(ascii: "="))
                let value = text(value)
                appendEscaped(value, quoted: value.isEmpty || value.utf8.contains(where: needsQuotes), to: &out)
            }
        }
        escapeUnicodeLineBreaks(&out)
        out.append(UInt8(ascii: "\n"))
        return out
    }

    /// U+0085, U+2028 and U+2029 as `\u0085`, `\u2028`, `\u2029`: readers that split on
    /// Unicode's line breaks (Python's `splitlines`, some viewers) must not see a forged line.
    /// (In JSON they can only be inside strings, where the escape means the same.)
    private static func escapeUnicodeLineBreaks(_ out: inout [UInt8]) {
        guard out.contains(where: { $0 == 0xC2 || $0 == 0xE2 }) else { return }
        var escaped: [UInt8] = []
        escaped.reserveCapacity(out.count + 16)
        var index = 0
        while index < out.count {
            if out[index] == 0xC2, index + 1 < out.count, out[index + 1] == 0x85 {
                escaped.append(contentsOf: "\\u0085".utf8)
                index += 2
            } else if out[index] == 0xE2, index + 2 < out.count, out[index + 1] == 0x80, out[index + 2] == 0xA8 || out[index + 2] == 0xA9 {
                escaped.append(contentsOf: (out[index + 2] == 0xA8 ? "\\u2028" : "\\u2029").utf8)
                index += 3
            } else {
                escaped.append(out[index])
                index += 1
            }
        }
        out = escaped
    }

    /// A metadata value in JSON: numbers and booleans as themselves, the rest as strings.
    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let string): return .string(string)
        case .stringConvertible(let convertible):
            switch convertible {
            case let number as Int: return .number(Double(number))
            case let number as Int64: return .number(Double(number))
            case let number as UInt64: return .number(Double(number))
            case let number as Double: return .number(number)
            case let flag as Bool: return .bool(flag)
            default: return .string(convertible.description)
            }
        case .array(let values): return .array(values.map(json))
        case .dictionary(let values): return .object(JSONObject(values.keys.sorted().map { ($0, json(values[$0]!)) }))
        }
    }

    static func text(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let string): return string
        case .stringConvertible(let convertible): return convertible.description
        case .array, .dictionary: return JSONWriter.string(json(value))
        }
    }

    private static func needsQuotes(_ byte: UInt8) -> Bool {
        byte <= 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "=") || byte == 0x7F
    }

    /// Control characters as `\n`, `\t`, `\u001b`…; inside quotes also `"` and `\`.
    private static func appendEscaped(_ string: String, quoted: Bool, to out: inout [UInt8]) {
        if !quoted, !string.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return out.append(contentsOf: string.utf8) }
        if quoted { out.append(UInt8(ascii: "\"")) }
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\n"): out.append(contentsOf: "\\n".utf8)
            case UInt8(ascii: "\r"): out.append(contentsOf: "\\r".utf8)
            case UInt8(ascii: "\t"): out.append(contentsOf: "\\t".utf8)
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                if quoted { out.append(UInt8(ascii: "\\")) }
                out.append(byte)
            case 0..<0x20, 0x7F:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        if quoted { out.append(UInt8(ascii: "\"")) }
    }
}
