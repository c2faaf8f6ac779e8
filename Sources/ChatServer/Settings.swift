/// Every setting the server reads, with its default and what it accepts, as `ChatServer --help`
/// shows them. `Configuration` reads them; `.env.example` explains each at length (a test keeps
/// the three lists the same).
struct Setting {
    let name: String
    /// The default, as a user would write it ("" for none).
    let defaultValue: String
    let summary: String
}

extension Configuration {
    static let settings: [(group: String, settings: [Setting])] = [
        ("Where and how it serves", [
            Setting(name: "PORT", defaultValue: "5001", summary: "HTTP, Socket.IO and WebSocket port, 0-65535 (0: the kernel picks one)"),
            Setting(name: "HOST", defaultValue: "::", summary: "address to listen on; \"::\" is every IPv6 and IPv4 address"),
            Setting(name: "WORKERS", defaultValue: "one per CPU core", summary: "event-loop threads, 1-256"),
            Setting(name: "JWT_SECRET", defaultValue: "", summary: "secret for HS256 tokens; required to serve"),
            Setting(name: "ENV_FILE", defaultValue: ".env", summary: "the file of settings read under the environment's"),
            Setting(name: "LOG_LEVEL", defaultValue: "info", summary: "trace, debug, info, notice, warning, error or critical"),
            Setting(name: "LOG_FORMAT", defaultValue: "text", summary: "text (a line of key=value pairs) or json (an object a line)"),
            Setting(name: "ALLOWED_ORIGINS", defaultValue: "*", summary: "web pages allowed to use the server: * or origins, comma-separated"),
            Setting(name: "METRICS_TOKEN", defaultValue: "", summary: "when set, GET /metrics asks for Authorization: Bearer <it>"),
            Setting(name: "HEADER_TIMEOUT_SECONDS", defaultValue: "10", summary: "a request head must be in within this, 1-3600"),
            Setting(name: "IDLE_TIMEOUT_SECONDS", defaultValue: "60", summary: "idle keep-alive connections close after this, 1-86400"),
            Setting(name: "SHUTDOWN_TIMEOUT_SECONDS", defaultValue: "10", summary: "on SIGTERM/SIGINT, how long requests in flight may take, 0-3600"),
        ]),
        ("The database", [
            Setting(name: "DATABASE_URL", defaultValue: "", summary: "the database as one URL (wins over DB_*)"),
            Setting(name: "DB_HOST", defaultValue: "libpq's", summary: "the database's host, as the Node server names it"),
            Setting(name: "DB_PORT", defaultValue: "libpq's", summary: "its port"),
            Setting(name: "DB_USER", defaultValue: "libpq's", summary: "its user"),
            Setting(name: "DB_PASSWORD", defaultValue: "libpq's", summary: "its password"),
            Setting(name: "DB_NAME", defaultValue: "libpq's", summary: "its database name"),
            Setting(name: "DB_POOL_SIZE", defaultValue: "4", summary: "connections to PostgreSQL, 1-64 (one more listens)"),
        ]),
        ("Messages and sessions", [
            Setting(name: "MESSAGE_QUEUE_LIMIT", defaultValue: "20000", summary: "messages waiting to be written at most, 1-10000000; past it: \"try again\""),
            Setting(name: "MAX_MESSAGE_BYTES", defaultValue: "16384", summary: "largest chat message in bytes, 1-1000000"),
            Setting(name: "TOKEN_LIFETIME_SECONDS", defaultValue: "3600", summary: "how long a login's token is valid, 1-31536000"),
            Setting(name: "SESSION_LIFETIME_SECONDS", defaultValue: "2592000", summary: "how long a login can be refreshed without the password, 1-315360000"),
            Setting(name: "PRESENCE_GRACE_SECONDS", defaultValue: "5", summary: "a user whose last connection went counts as online this long, 0-3600"),
            Setting(name: "CONNECTION_STATE_RECOVERY", defaultValue: "false", summary: "recovery for every Socket.IO connection: true or false"),
        ]),
        ("Passwords", [
            Setting(name: "BCRYPT_COST", defaultValue: "10", summary: "bcrypt cost for new passwords, 4-31"),
            Setting(name: "BCRYPT_THREADS", defaultValue: "one per CPU core but one", summary: "threads hashing passwords, 1-256"),
            Setting(name: "BCRYPT_QUIET_THREADS", defaultValue: "1 (0 on one core)", summary: "more threads hashing while the chat is quiet, 0-256"),
        ]),
        ("Abuse limits (per process)", [
            Setting(name: "LOGIN_FAILURES_BEFORE_DELAY", defaultValue: "5", summary: "failed logins in a row at an account before each waits longer, 1-1000"),
            Setting(name: "LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE", defaultValue: "10", summary: "failed logins per client address and minute"),
            Setting(name: "REGISTRATIONS_PER_ADDRESS_PER_HOUR", defaultValue: "20", summary: "registrations per client address and hour"),
            Setting(name: "MESSAGE_BURST", defaultValue: "1000", summary: "send_message events per user at once (0: no limit)"),
            Setting(name: "MESSAGES_PER_SECOND", defaultValue: "50", summary: "then per second"),
            Setting(name: "TYPING_EVENT_BURST", defaultValue: "8", summary: "typing events per user at once (0: no limit)"),
            Setting(name: "TYPING_EVENTS_PER_SECOND", defaultValue: "4", summary: "then per second"),
            Setting(name: "RECEIPT_BURST", defaultValue: "100", summary: "mark_read events per user at once (0: no limit)"),
            Setting(name: "RECEIPTS_PER_SECOND", defaultValue: "20", summary: "then per second"),
            Setting(name: "OTHER_EVENT_BURST", defaultValue: "100", summary: "every other event per user at once (0: no limit)"),
            Setting(name: "OTHER_EVENTS_PER_SECOND", defaultValue: "20", summary: "then per second"),
            Setting(name: "REFUSED_EVENTS_BEFORE_DISCONNECT", defaultValue: "100", summary: "refused events with no pause before a socket is disconnected"),
            Setting(name: "SOCKETS_PER_USER", defaultValue: "20", summary: "sockets one user may have at once (0: no cap)"),
            Setting(name: "CONNECTIONS_PER_ADDRESS", defaultValue: "1000", summary: "Engine.IO sessions one client address may have open"),
            Setting(name: "NEW_CONNECTIONS_PER_ADDRESS_PER_SECOND", defaultValue: "20", summary: "and open anew per second"),
        ]),
        ("Several processes", [
            Setting(name: "INSTANCE_ID", defaultValue: "", summary: "starts every Engine.IO session id: 1-32 letters, digits, '-' or '_'"),
            Setting(name: "TRUSTED_PROXIES", defaultValue: "", summary: "balancers whose X-Forwarded-For names the client: IPs, comma-separated"),
        ]),
    ]

    /// The settings as `--help` lists them: each as NAME=default (or its default described),
    /// then what it is, indented (lines kept under 80 columns: the help is wrapped at the
    /// terminal's width).
    static var settingsHelp: String {
        var lines = ["SETTINGS come from the environment, then from ENV_FILE (.env); an empty value",
                     "counts as unset. A bad value ends the server with a message naming it (exit",
                     "status 2). .env.example explains each at length."]
        for (group, members) in settings {
            lines.append("")
            lines.append("\(group):")
            for setting in members {
                // A default that is a value reads as one; one that is a description does not.
                let isValue = !setting.defaultValue.contains(" ") && !setting.defaultValue.contains("'")
                lines.append(isValue ? "  \(setting.name)=\(setting.defaultValue)" : "  \(setting.name)  (default: \(setting.defaultValue))")
                lines.append("      \(setting.summary)")
            }
        }
        return lines.joined(separator: "\n")
    }
}
