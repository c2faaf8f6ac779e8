/// Where and how to connect: libpq connection keywords (`host`, `port`, `user`, `password`,
/// `dbname`, …). A `postgres://` URL goes in as `dbname` and libpq expands it; keywords after
/// it override what the URL says.
public struct PostgresConnectionOptions: Sendable {
    public var keywords: [(key: String, value: String)]

    public init(keywords: [(key: String, value: String)]) {
        self.keywords = keywords
    }

    public static func url(_ url: String) -> PostgresConnectionOptions {
        PostgresConnectionOptions(keywords: [("dbname", url)])
    }

    /// The same options with session settings every connection of ours uses: timestamps in
    /// UTC and ISO style, so `timestamp` values read back the way they were written; and,
    /// when given, a statement time-out so no answer waits on the database for ever.
    public func withSessionDefaults(applicationName: String, statementTimeoutMilliseconds: Int? = nil) -> PostgresConnectionOptions {
        var copy = self
        var options = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c client_encoding=UTF8"
        if let statementTimeoutMilliseconds { options += " -c statement_timeout=\(statementTimeoutMilliseconds)" }
        copy.keywords.append(("application_name", applicationName))
        copy.keywords.append(("options", options))
        if !keywords.contains(where: { $0.key == "connect_timeout" }) {
            copy.keywords.append(("connect_timeout", "5"))
        }
        return copy
    }

    /// Runs `body` with NULL-terminated C arrays of keywords and values, as libpq wants them.
    func withCArrays<R>(_ body: (UnsafePointer<UnsafePointer<CChar>?>, UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let keys = keywords.map { strdup($0.key) }
        let values = keywords.map { strdup($0.value) }
        defer {
            keys.forEach { free($0) }
            values.forEach { free($0) }
        }
        let keyPointers = keys.map { UnsafePointer($0) } + [nil]
        let valuePointers = values.map { UnsafePointer($0) } + [nil]
        return keyPointers.withUnsafeBufferPointer { k in
            valuePointers.withUnsafeBufferPointer { v in body(k.baseAddress!, v.baseAddress!) }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
