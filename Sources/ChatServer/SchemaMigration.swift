import PostgresClient
import ServerRuntime

#if canImport(Glibc)
import Glibc
#endif
import Logging

private let logger = Logger(label: "chat.database")

/// `ChatServer migrate [FILE]`: applies schema.sql (idempotent) with the server's own
/// database settings, so `make run` needs no second way of reading them.
enum SchemaMigration {
    static func apply(file: String, configuration: Configuration) -> Int32 {
        guard let sql = readFile(file) else {
            logger.error("cannot read \(file): \(String(cString: strerror(errno)))")
            return 1
        }
        do {
            let connection = try PostgresConnection.connect(configuration.database.withSessionDefaults(applicationName: "chat-server-migrate"))
            try connection.executeScript(sql)
            let version = try connection.query("SELECT max(version)::text AS version FROM schema_version").value(0, "version") ?? "?"
            print("schema applied from \(file) to \(configuration.databaseDescription) (schema version \(version))")
            return 0
        } catch {
            logger.error("applying \(file) to \(configuration.databaseDescription) failed: \(error)")
            return 1
        }
    }

    static func readFile(_ path: String) -> String? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
