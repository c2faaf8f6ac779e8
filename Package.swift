// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swift-chat-server",
    products: [
        .executable(name: "ChatServer", targets: ["ChatServer"]),
        .executable(name: "chat-cli-a", targets: ["chat-cli-a"]),
        .executable(name: "chat-cli-b", targets: ["chat-cli-b"]),
        .executable(name: "chat-bench", targets: ["chat-bench"]),
        .library(name: "ChatClient", targets: ["ChatClient"]),
    ],
    targets: [
        // C headers, wrapped once; nothing else includes C.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CLinux", providers: [.apt(["libcrypt-dev"])]),

        .target(name: "JSON"),
        .target(name: "Base64"),
        .target(name: "JWT", dependencies: ["JSON", "Base64", "COpenSSL"]),
        .target(name: "WebSocket", dependencies: ["Base64", "COpenSSL"]),
        .target(name: "SocketIO", dependencies: ["JSON", "Base64"]),
        .target(name: "PostgresClient", dependencies: ["CLibPQ"]),
        .target(name: "ChatCore", dependencies: ["JSON", "JWT", "CLinux", "COpenSSL"]),
        .executableTarget(
            name: "ChatServer",
            dependencies: ["ChatCore", "JSON", "JWT", "Base64", "WebSocket", "SocketIO", "PostgresClient", "CLinux"]
        ),

        // The client library and the two terminal clients over it.
        .target(name: "ChatClient", dependencies: ["JSON", "WebSocket", "SocketIO"]),
        .executableTarget(name: "chat-cli-a", dependencies: ["ChatClient"]),
        .executableTarget(name: "chat-cli-b", dependencies: ["ChatClient"]),
        // make bench: the load generator.
        .executableTarget(name: "chat-bench", dependencies: ["ChatClient", "WebSocket", "CLinux"]),

        .testTarget(name: "ChatCoreTests", dependencies: ["ChatCore", "JSON", "JWT", "Base64", "WebSocket", "SocketIO", "PostgresClient", "ChatServer", "CLinux"]),
        .testTarget(name: "IntegrationTests", dependencies: ["JSON", "JWT", "Base64", "WebSocket", "PostgresClient"], exclude: ["python"]),
    ],
    swiftLanguageModes: [.v6]
)
