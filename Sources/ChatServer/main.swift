#if canImport(Glibc)
import Glibc
#endif

// ChatServer            serve (the default)
// ChatServer migrate [schema.sql]   apply the schema and exit
// ChatServer conformance            the protocol-suite and Autobahn targets (no database; tests only)
let arguments = Array(CommandLine.arguments.dropFirst())
let usage = "usage: ChatServer [serve | migrate [schema.sql] | conformance]"

var environment: [String: String] = [:]
var entry = environ
while let pointer = entry.pointee {
    let pair = String(cString: pointer)
    if let equals = pair.firstIndex(of: "=") { environment[String(pair[..<equals])] = String(pair[pair.index(after: equals)...]) }
    entry += 1
}
let envFile = environment["ENV_FILE"] ?? ".env"
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
case "conformance":
    exit(Server(configuration: configuration, jwtSecret: nil).run())
case "-h", "--help", "help":
    print(usage)
default:
    Log.error(usage)
    exit(2)
}
