// ChatServer: the executable. The chat application wired onto the layers — the chat's
// Socket.IO namespace (ChatSocketApp), the REST routes (APIRouter), the PostgreSQL store
// (all of the chat's SQL) — and the boot code: configuration and `.env`, the subcommands
// below, signals and the orderly stop, migrations, the conformance mode.
//
// May import: every module of the server (ChatCore, SocketIOServer, HTTPServer,
// ServerRuntime, PostgresClient and the codecs). Nothing imports it.

import JWT
import ServerRuntime

#if canImport(Glibc)
import Glibc
#endif

// ChatServer            serve (the default)
// ChatServer migrate [schema.sql]   apply the schema and exit
// ChatServer conformance            the protocol-suite and Autobahn targets (no database; tests only)
// ChatServer address                the URL clients on this machine reach the server at, from the
//                                   same settings (make chat-a and make chat-b use it)
OpenSSLProcess.keepStateUntilExit()
let arguments = Array(CommandLine.arguments.dropFirst())
let usage = "usage: ChatServer [serve | migrate [schema.sql] | conformance | address]"

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

let configuration: Configuration
do {
    configuration = try Configuration(variables)
} catch {
    Log.error("configuration: \(error)")
    exit(1)
}
Log.minimumLevel = configuration.logLevel

switch arguments.first {
case "migrate":
    exit(SchemaMigration.apply(file: arguments.count > 1 ? arguments[1] : "schema.sql", configuration: configuration))
case nil, "serve":
    guard let secret = configuration.jwtSecret else {
        Log.error("JWT_SECRET is not set: put a long random secret in .env or the environment (see .env.example)")
        exit(1)
    }
    exit(Server(configuration: configuration, jwtSecret: secret).run())
case "address":
    guard configuration.port != 0 else {
        Log.error("PORT=0 lets the kernel choose a port at start-up; no address can be known before")
        exit(1)
    }
    print(configuration.localURL)
case "conformance":
    exit(Server(configuration: configuration, jwtSecret: nil).run())
case "-h", "--help", "help":
    print(usage)
default:
    Log.error(usage)
    exit(2)
}
