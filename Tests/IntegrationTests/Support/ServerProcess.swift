import Foundation

/// The real server binary, started as a child process on a kernel-chosen port.
final class ServerProcess: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let process = Process()
    let port: Int
    private let log = LockedText()

    /// Starts `ChatServer serve` and waits for its "listening" line. An empty value in
    /// `environment` removes that variable.
    init(binary: String, databaseURL: String, environment extra: [String: String] = [:]) throws {
        var environment = ServerProcess.baseEnvironment()
        environment["DATABASE_URL"] = databaseURL
        environment["JWT_SECRET"] = IntegrationSecrets.jwtSecret
        environment["PORT"] = "0"
        environment["HOST"] = "127.0.0.1"
        environment["BCRYPT_COST"] = "4"
        environment["WORKERS"] = "2"
        // The tests register many users, fail logins on purpose and open connections quickly,
        // all from 127.0.0.1.
        environment["REGISTRATIONS_PER_ADDRESS_PER_HOUR"] = "100000000"
        environment["LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE"] = "100000000"
        environment["CONNECTIONS_PER_ADDRESS"] = "100000000"
        environment["NEW_CONNECTIONS_PER_ADDRESS_PER_SECOND"] = "10000000"
        for (key, value) in extra { environment[key] = value.isEmpty ? nil : value }
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve"]
        process.environment = environment
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        let portFound = DispatchSemaphore(value: 0)
        let foundPort = LockedText()
        let log = self.log
        stdout.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else { handle.readabilityHandler = nil; return }
            let text = String(decoding: data, as: UTF8.self)
            log.append(text)
            if foundPort.text.isEmpty, let range = text.range(of: #"listening on http://[^ ]*:[0-9]+ "#, options: .regularExpression) {
                let digits = text[range].split(separator: ":").last!.trimmingCharacters(in: .whitespaces)
                foundPort.append(digits)
                portFound.signal()
            }
        }
        stderr.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else { handle.readabilityHandler = nil; return }
            log.append(String(decoding: data, as: UTF8.self))
        }
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while portFound.wait(timeout: .now() + 0.05) == .timedOut && process.isRunning && Date() < deadline {}
        guard let port = Int(foundPort.text) else {
            process.terminate()
            throw Failure(description: "the server did not start; it said: \(log.text)")
        }
        self.port = port
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var output: String { log.text }

    /// Sends `signal` and waits for the exit; returns the exit status (nil if it did not exit in time).
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeout: TimeInterval = 20) -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        guard !process.isRunning else { return nil }
        return process.terminationStatus
    }

    /// Only what a server needs from the outer environment: no DB_*, no developer's .env.
    static func baseEnvironment() -> [String: String] {
        let outer = ProcessInfo.processInfo.environment
        var environment = ["PATH": outer["PATH"] ?? "/usr/bin:/bin", "ENV_FILE": "/nonexistent/.env", "LOG_LEVEL": "warning"]
        if let home = outer["HOME"] { environment["HOME"] = home }
        // make sanitize: the server reports where the tests' own process does.
        for name in ["TSAN_OPTIONS", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS"] { environment[name] = outer[name] }
        return environment
    }

    /// Runs the binary to completion (for `migrate` and start-up failures).
    static func runToCompletion(_ binary: String, _ arguments: [String], environment extra: [String: String],
                                workingDirectory: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        var environment = baseEnvironment()
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

enum IntegrationSecrets {
    static let jwtSecret = "integration-test-secret-0123456789"
}

final class LockedText: @unchecked Sendable {
    private let lock = NSLock()
    private var value = ""
    func append(_ text: String) { lock.lock(); value += text; lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return value }
}
