import ChatCore
import JWT
import PostgresClient
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The running server: event loops with their listeners, the database pool, the services,
/// and the signal handling that stops them in order.
final class Server {
    private let configuration: Configuration
    /// nil: the conformance mode, without database or JWT.
    private let jwtSecret: String?

    init(configuration: Configuration, jwtSecret: String?) {
        self.configuration = configuration
        self.jwtSecret = jwtSecret
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully. Returns the exit status.
    func run() -> Int32 {
        // Signals are taken synchronously by the main thread (sigwait); every thread started
        // from here inherits the mask, so none of them is interrupted.
        var signals = Self.stopSignals
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        signal(SIGPIPE, SIG_IGN)

        guard let jwtSecret else {
            return serve(handler: Conformance.router(), pool: nil, poolThread: nil, description: "conformance mode (no database)", beforeShutdown: {})
        }
        var poolConfiguration = PostgresPool.Configuration()
        poolConfiguration.connections = configuration.databasePoolSize
        let pool = PostgresPool(options: configuration.database, configuration: poolConfiguration)
        let poolThread = PlatformThread.start(name: "postgres-pool") { pool.run() }
        let store = PostgresChatStore(pool: pool)
        let hashing = WorkQueue(label: "bcrypt", limit: 1024, threads: configuration.bcryptThreads)
        let accounts = AccountService(store: store, signer: JWTSigner(secret: jwtSecret), bcryptCost: configuration.bcryptCost,
                                      hashing: hashing, now: { Int64(time(nil)) })
        let rooms = SocketIORooms()
        let writer = ChatSocketApp.Writer(pool: pool) { ChatSocketApp.deliver($0, rooms: rooms) }
        let chat = ChatSocketApp(accounts: accounts, writer: writer, rooms: rooms, maxMessageBytes: configuration.maxMessageBytes)
        let socketIO = SocketIOServer(namespaces: [chat.namespace], rooms: rooms)
        let engine = EngineIOServer(options: EngineIOOptions()) { session in socketIO.makeClient(for: session) }
        let router = APIRouter(accounts: accounts, messages: MessageService(store: store), store: store, engine: engine)
        return serve(handler: router, pool: pool, poolThread: poolThread, description: "database \(configuration.databaseDescription)") {
            // Messages already taken are committed and acknowledged before sessions close.
            if !writer.waitUntilIdle(timeoutMilliseconds: 5_000) { Log.warning("stopping with messages still being written") }
            engine.closeAllSessions(timeoutMilliseconds: 3_000)
        }
    }

    private static var stopSignals: sigset_t {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        return signals
    }

    /// Starts the loops with `router`, waits for a stop signal, then shuts down in order.
    private func serve(handler router: any HTTPHandler, pool: PostgresPool?, poolThread: PlatformThread?, description: String,
                       beforeShutdown: () -> Void) -> Int32 {
        var signals = Self.stopSignals

        var limits = HTTPConnectionLimits()
        limits.parser.maxHeaderBytes = configuration.maxHeaderBytes
        limits.parser.maxBodyBytes = configuration.maxBodyBytes
        limits.headerTimeoutMilliseconds = configuration.headerTimeoutMilliseconds
        limits.requestTimeoutMilliseconds = configuration.requestTimeoutMilliseconds
        limits.idleTimeoutMilliseconds = configuration.idleTimeoutMilliseconds

        let loops = (0..<configuration.workers).map { EventLoop(index: $0) }
        var port = configuration.port
        var host = configuration.host
        for loop in loops {
            let listener: (fd: Int32, port: Int)
            do {
                listener = try Sockets.listen(host: host, port: port, exclusive: loop.index == 0)
            } catch {
                // No IPv6 on this machine: the default "::" falls back to IPv4.
                if host == "::", loop.index == 0, let v4 = try? Sockets.listen(host: "0.0.0.0", port: port, exclusive: true) {
                    host = "0.0.0.0"
                    listener = v4
                } else {
                    Log.error("cannot listen: \(error)")
                    pool?.shutdown()
                    poolThread?.join()
                    return 1
                }
            }
            port = listener.port  // PORT=0: the first loop's kernel-chosen port, shared by the rest
            _ = Acceptor(fd: listener.fd, loop: loop) { [unowned loop] fd in
                _ = HTTPConnection(fd: fd, loop: loop, handler: router, limits: limits)
            }
        }
        let finishedLoops = Atomic<Int>(0)
        let threads = loops.map { loop in
            PlatformThread.start(name: "event-loop-\(loop.index)") {
                loop.run()
                finishedLoops.add(1, ordering: .relaxed)
            }
        }

        let shownHost = host.contains(":") ? "[\(host)]" : host
        print("chat server listening on http://\(shownHost):\(port) with \(loops.count) event loops; \(description)")
        fflush(nil)

        var received: Int32 = 0
        sigwait(&signals, &received)
        Log.info("received \(received == SIGINT ? "SIGINT" : "SIGTERM"): finishing requests in flight, then stopping")
        beforeShutdown()
        for loop in loops { loop.requestShutdown() }

        // Wait for the loops to drain, up to the shutdown time-out or a second signal.
        let deadline = monotonicMilliseconds() + configuration.shutdownTimeoutMilliseconds
        var pause = timespec(tv_sec: 0, tv_nsec: 50_000_000)
        while finishedLoops.load(ordering: .relaxed) < loops.count {
            if monotonicMilliseconds() >= deadline || sigtimedwait(&signals, nil, &pause) > 0 {
                Log.warning("stopping with connections still open")
                for loop in loops { loop.forceStop() }
                break
            }
        }
        for thread in threads { thread.join() }
        pool?.shutdown()
        poolThread?.join()
        Log.info("stopped")
        return 0
    }
}
