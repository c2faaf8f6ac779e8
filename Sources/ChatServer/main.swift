// ChatServer: the executable. The chat application wired onto the layers — the chat's
// Socket.IO namespace (ChatSocketApp), the REST routes (APIRouter), the PostgreSQL store
// (all of the chat's SQL) — and the boot code: configuration and `.env`, the subcommands
// below, signals and the orderly stop, migrations, the conformance mode.
//
// May import: every module of the server (ChatCore, SocketIOServer, HTTPServer,
// ServerRuntime, PostgresClient and the codecs). Nothing imports it.

import ArgumentParser
import JWT
import ServerRuntime

#if canImport(Glibc)
import Glibc
#endif
import Logging
import ServerLogging

/// What `--version` prints.
let chatServerVersion = "0.13.0"

/// The command line (swift-argument-parser): subcommands, `--help` with every setting,
/// `--version`. Settings are not options: they come from the environment and `.env`, as the
/// Node server's did.
struct ChatServerCommand: ParsableCommand {
    /// Made on first use, after `LogLineHandler.bootstrap()` at the bottom of this file.
    static let logger = Logger(label: "chat.server")

    static let configuration = CommandConfiguration(
        commandName: "ChatServer",
        abstract: "A self-hosted chat server: REST, Socket.IO (Engine.IO v4, Socket.IO v5) and a web page on one port, PostgreSQL behind.",
        discussion: Configuration.settingsHelp,
        version: chatServerVersion,
        subcommands: [Serve.self, Migrate.self, Address.self, ConformanceTargets.self],
        defaultSubcommand: Serve.self)

    /// The settings, read from the environment and then ENV_FILE (`.env`); a bad one ends the
    /// process with a message naming it, exit status 2.
    static func loadConfiguration() throws -> Configuration {
        var environment: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let pair = String(cString: pointer)
            if let equals = pair.firstIndex(of: "=") { environment[String(pair[..<equals])] = String(pair[pair.index(after: equals)...]) }
            entry += 1
        }
        // An empty ENV_FILE counts as unset, like every other setting.
        let envFile = environment["ENV_FILE"].flatMap { $0.isEmpty ? nil : $0 } ?? ".env"
        let variables = Configuration.variables(environment: environment, dotEnvText: SchemaMigration.readFile(envFile))
        do {
            let configuration = try Configuration(variables)
            LogLineHandler.configure(level: configuration.logLevel, format: configuration.logFormat)
            return configuration
        } catch {
            ChatServerCommand.logger.error("configuration: \(error) (ChatServer --help lists every setting)")
            throw ExitCode(2)
        }
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve until SIGTERM or SIGINT, then stop gracefully (the default).")

    func run() throws {
        let configuration = try ChatServerCommand.loadConfiguration()
        guard let secret = configuration.jwtSecret else {
            ChatServerCommand.logger.error("JWT_SECRET is not set: put a long random secret in .env or the environment (see .env.example)")
            throw ExitCode(2)
        }
        throw ExitCode(Server(configuration: configuration, jwtSecret: secret).run())
    }
}

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the schema to the database, then exit.")

    @Argument(help: "The schema file.")
    var schema = "schema.sql"

    func run() throws {
        throw ExitCode(SchemaMigration.apply(file: schema, configuration: try ChatServerCommand.loadConfiguration()))
    }
}

struct Address: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the URL clients on this machine reach the server at, from the same settings.")

    func run() throws {
        let configuration = try ChatServerCommand.loadConfiguration()
        guard configuration.port != 0 else {
            ChatServerCommand.logger.error("PORT=0 lets the kernel choose a port at start-up; no address can be known before")
            throw ExitCode(1)
        }
        print(configuration.localURL)
    }
}

struct ConformanceTargets: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "The protocol suites' and Autobahn's targets, with no database (tests only).",
        shouldDisplay: false)

    func run() throws {
        throw ExitCode(Server(configuration: try ChatServerCommand.loadConfiguration(), jwtSecret: nil).run())
    }
}

LogLineHandler.bootstrap()
OpenSSLProcess.keepStateUntilExit()
do {
    var command = try ChatServerCommand.parseAsRoot()
    try command.run()
} catch {
    // A command line it cannot take (an unknown subcommand, a stray argument): the message and
    // the usage, exit status 2, as for a bad setting. Help, --version and exits go as they are.
    if ChatServerCommand.exitCode(for: error) == .validationFailure {
        let message = Array((ChatServerCommand.fullMessage(for: error) + "\nSee 'ChatServer --help' for the subcommands and settings.\n").utf8)
        _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(2)
    }
    ChatServerCommand.exit(withError: error)
}
