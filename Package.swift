// swift-tools-version:6.0
import PackageDescription

// Layers, lowest first; a module imports only modules above it in this list (README,
// "Architecture"). Each module's file named after it says what it holds.
let package = Package(
    name: "swift-chat-server",
    products: [
        .executable(name: "ChatServer", targets: ["ChatServer"]),
        .executable(name: "chat-cli-a", targets: ["chat-cli-a"]),
        .executable(name: "chat-cli-b", targets: ["chat-cli-b"]),
        .executable(name: "chat-bench", targets: ["chat-bench"]),
        .library(name: "ChatClient", targets: ["ChatClient"]),
    ],
    dependencies: [
        // The command line: subcommands, --help, --version (the ecosystem's interface for it).
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Metrics: the ecosystem's interface (swift-metrics) in the layers, Prometheus's text
        // format from swift-prometheus at /metrics.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        // Logging: every layer logs through swift-log's Logger; ServerLogging writes the lines.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C headers, wrapped once; nothing else includes C.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CLinux", providers: [.apt(["libcrypt-dev"])]),

        // Codecs: bytes in, values out; no I/O.
        .target(name: "JSON"),
        .target(name: "Base64"),
        .target(name: "JWT", dependencies: ["JSON", "Base64", "COpenSSL"]),
        .target(name: "WebSocket", dependencies: ["Base64", "COpenSSL"]),
        .target(name: "SocketIO", dependencies: ["JSON", "Base64"]),

        // The server's layers.
        .target(name: "ServerRuntime", dependencies: ["CLinux", .product(name: "Logging", package: "swift-log")]),
        .target(name: "ServerLogging", dependencies: ["JSON", "ServerRuntime", .product(name: "Logging", package: "swift-log")]),
        .target(name: "PostgresClient", dependencies: ["CLibPQ", "ServerRuntime"]),
        .target(name: "HTTPServer", dependencies: ["ServerRuntime", "JSON", "WebSocket", .product(name: "Logging", package: "swift-log")]),
        .target(name: "DotEnv", dependencies: ["HTTPServer"]),
        .target(name: "SocketIOServer", dependencies: ["HTTPServer", "ServerRuntime", "SocketIO", "WebSocket", "JSON", "Base64", "CLinux",
                                                 .product(name: "Logging", package: "swift-log")]),
        .target(name: "ChatCore", dependencies: ["ServerRuntime", "JSON", "JWT", "CLinux", .product(name: "CoreMetrics", package: "swift-metrics"),
                                                 .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "ChatServer",
            dependencies: ["ChatCore", "SocketIOServer", "HTTPServer", "ServerRuntime", "PostgresClient", "JSON", "JWT", "SocketIO", "WebSocket", "DotEnv", "ServerLogging",
                           .product(name: "Logging", package: "swift-log"), .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "CoreMetrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus")],
            // The web page and the API's OpenAPI document, compiled into the executable: one file to deploy.
            resources: [.embedInCode("Web/index.html"), .embedInCode("Web/chat.css"), .embedInCode("Web/chat.js"), .embedInCode("openapi.json")]
        ),

        // The client library and the two terminal clients over it.
        .target(name: "ChatClient", dependencies: ["JSON", "Base64", "WebSocket", "SocketIO", "ServerRuntime"]),
        .executableTarget(name: "chat-cli-a", dependencies: ["ChatClient"]),
        .executableTarget(name: "chat-cli-b", dependencies: ["ChatClient"]),
        // make bench: the load generator.
        .executableTarget(name: "chat-bench", dependencies: ["ChatClient", "WebSocket", "ServerRuntime", "JWT", "CLinux", "ServerLogging",
                                                    .product(name: "Logging", package: "swift-log"),
                                                    .product(name: "CoreMetrics", package: "swift-metrics"),
                                                    .product(name: "Prometheus", package: "swift-prometheus")]),

        // Test support: an in-memory ChatStore; in no product, so no executable links it.
        .target(name: "ChatTestSupport", dependencies: ["ChatCore"], path: "Tests/ChatTestSupport"),

        // Unit tests, one target per module they test.
        .testTarget(name: "JSONTests", dependencies: ["JSON"]),
        .testTarget(name: "Base64Tests", dependencies: ["Base64"]),
        .testTarget(name: "JWTTests", dependencies: ["JWT", "JSON", "Base64"]),
        .testTarget(name: "WebSocketTests", dependencies: ["WebSocket"]),
        .testTarget(name: "SocketIOTests", dependencies: ["SocketIO", "JSON"]),
        .testTarget(name: "ServerRuntimeTests", dependencies: ["ServerRuntime", "CLinux"]),
        .testTarget(name: "ServerLoggingTests", dependencies: ["ServerLogging", "JSON", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "PostgresClientTests", dependencies: ["PostgresClient"]),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer"]),
        .testTarget(name: "SocketIOServerTests", dependencies: ["SocketIOServer", "HTTPServer", "ServerRuntime", "SocketIO", "WebSocket", "JSON", "CLinux"]),
        .testTarget(name: "ChatCoreTests", dependencies: ["ChatCore", "ChatTestSupport", "ServerRuntime", "JSON", "JWT", "CLinux"]),
        .testTarget(name: "ChatServerTests", dependencies: ["ChatServer", "ChatCore", "SocketIOServer", "SocketIO", "JSON", "HTTPServer", "DotEnv"]),
        .testTarget(name: "ChatClientTests", dependencies: ["ChatClient", "WebSocket", "JSON", "JWT"]),
        // Against the real server process and a real PostgreSQL (make test starts both).
        .testTarget(name: "IntegrationTests", dependencies: ["JSON", "JWT", "Base64", "WebSocket", "PostgresClient"], exclude: ["python"]),
    ],
    swiftLanguageModes: [.v6]
)

// The libFuzzer targets (Fuzz/, docs/fuzzing.md): only when CHAT_FUZZ=1, so the ordinary builds
// never see them. scripts/fuzz.sh builds them in .build/fuzz with --sanitize fuzzer and address.
if Context.environment["CHAT_FUZZ"] == "1" {
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("FuzzHTTPRequest", ["HTTPServer"]),
        ("FuzzWebSocket", ["WebSocket"]),
        ("FuzzUTF8", ["WebSocket"]),
        ("FuzzEngineIO", ["SocketIO"]),
        ("FuzzSocketIO", ["SocketIO", "JSON"]),
        ("FuzzJSON", ["JSON"]),
        ("FuzzJWT", ["JWT", "JSON", "Base64"]),
        ("FuzzDotEnv", ["DotEnv"]),
    ]
    package.targets.append(.target(name: "FuzzSupport", path: "Fuzz/Sources/FuzzSupport"))
    for (name, dependencies) in fuzzTargets {
        package.targets.append(.executableTarget(name: name, dependencies: dependencies + ["FuzzSupport"], path: "Fuzz/Sources/\(name)"))
    }
}
