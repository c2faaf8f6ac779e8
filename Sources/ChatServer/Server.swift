import ChatCore
import HTTPServer
import JWT
import PostgresClient
import ServerRuntime
import SocketIOServer

#if canImport(Glibc)
import Glibc
#endif
import Logging

private let logger = Logger(label: "chat.server")

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
            return serve(handler: Conformance.router(), pool: nil, poolThread: nil, description: "conformance mode (no database)", beforeShutdown: {}, afterLoops: {})
        }
        // Before anything makes a counter: swift-metrics binds a counter to the backend there
        // is when it is made.
        let metrics = ServerMetrics()
        var poolConfiguration = PostgresPool.Configuration()
        poolConfiguration.connections = configuration.databasePoolSize
        poolConfiguration.applicationName = "chat-server"
        let pool = PostgresPool(options: configuration.database, configuration: poolConfiguration)
        let poolThread = PlatformThread.start(name: "postgres-pool") { pool.run() }
        let store = PostgresChatStore(pool: pool)
        let rooms = SocketIORooms()
        let streamHead = StreamHead()
        // Several processes on one database: what the others write is read and delivered here
        // in its turn (README, Several processes).
        let sequencer = StreamSequencer { span, completion in
            store.readStream(span, limit: Self.streamReadLimit) { result in
                switch result {
                case .success(let range):
                    ChatSocketApp.deliverRemote(range, rooms: rooms, head: streamHead)
                    completion(range.through)
                case .failure(let error):
                    logger.warning("could not read the stream \(span) other processes wrote (trying again): \(error)")
                    completion(nil)
                }
            }
        }
        let writer = ChatSocketApp.Writer(store: store, maxQueued: configuration.messageQueueLimit, sequencer: sequencer,
                                          report: { ChatSocketApp.deliver($0, writtenAt: $1, rooms: rooms, head: streamHead) },
                                          resume: { ChatSocketApp.resumeSenders($0, room: $1) })
        let cluster = ClusterSignals(processID: store.processID)
        let listener = StreamListener(store: store, sequencer: sequencer, head: streamHead, signals: cluster, options: configuration.database)
        let listenerThread = PlatformThread.start(name: "postgres-listen") { listener.run() }
        let hashing = WorkQueue(label: "bcrypt", limit: 1024, threads: configuration.bcryptThreads,
                                quietThreads: configuration.bcryptQuietThreads, isQuiet: { writer.isQuiet() })
        let accounts = AccountService(store: store, signer: JWTSigner(secret: jwtSecret), bcryptCost: configuration.bcryptCost,
                                      hashing: hashing, now: { Int64(time(nil)) }, tokenLifetime: configuration.tokenLifetimeSeconds,
                                      throttle: LoginThrottle(settings: configuration.loginThrottle),
                                      sessionLifetime: configuration.sessionLifetimeSeconds)
        let messages = MessageService(store: store)
        let blocks = BlockList(store: store) { blocker, blocked, blocking in cluster.send("b", blocker, blocked, blocking ? "1" : "0") }
        cluster.on("b") { _, arguments in
            guard arguments.count == 3, let blocker = Validation.uuid(arguments[0]), let blocked = Validation.uuid(arguments[1]) else { return }
            blocks.apply(blocker: blocker, blocked: blocked, blocking: arguments[2] == "1")
        }
        blocks.load()
        // Tokens revoked on another process: this one reads the user's generation again and
        // ends their sockets here too.
        cluster.on("x") { _, arguments in
            guard arguments.count >= 1, let userID = Validation.uuid(arguments[0]) else { return }
            accounts.forgetGeneration(of: userID)
            let reason = arguments.dropFirst().joined(separator: " ")
            ChatSocketApp.closeSessions(of: userID, reason: reason.isEmpty ? "signed out" : reason, rooms: rooms)
        }
        // Back after not hearing the others: logouts and blocks they announced meanwhile are lost,
        // so the generations are read again and the blocks reloaded.
        cluster.onListening { listening in
            guard listening else { return }
            accounts.forgetAllGenerations()
            blocks.load()
        }
        let typing = TypingRelay(store: store, rooms: rooms, blocks: blocks, signals: cluster)
        typing.listen()
        let chat = ChatSocketApp(accounts: accounts, messages: messages, writer: writer, rooms: rooms,
                                 sessions: RecoverySessionID(signer: JWTSigner(secret: jwtSecret)), streamHead: streamHead,
                                 recoveryForEverySocket: configuration.connectionStateRecovery, maxMessageBytes: configuration.maxMessageBytes,
                                 typing: typing, conversations: ConversationService(store: store, receipts: writer),
                                 presence: PresenceTracker(store: store, rooms: rooms, blocks: blocks, graceMilliseconds: configuration.presenceGraceMilliseconds,
                                                           signals: cluster),
                                 rateLimiter: SocketRateLimiter(limits: EventRateLimits(settings: configuration.eventRateLimits)), blocks: blocks)
        let socketIO = SocketIOServer(namespaces: [chat.namespace], rooms: rooms)
        var engineOptions = EngineIOOptions()
        engineOptions.sessionIDPrefix = configuration.instanceID
        let engine = EngineIOServer(path: "/socket.io/", options: engineOptions, caps: ConnectionCaps(settings: configuration.connectionCaps)) { session in
            socketIO.makeConnection(for: session)
        }
        let readiness = Readiness(store: store, writerOverloaded: { writer.overloadedForMilliseconds >= Readiness.overloadMilliseconds })
        let api = APIRouter(accounts: accounts, messages: messages, conversations: chat.conversations, presence: chat.presence, blocks: blocks, store: store,
                            announceRead: { reader, peer, readSeq, position in
                                ChatSocketApp.announceRead(reader: reader, peer: peer, readSeq: readSeq, position: position, rooms: rooms, head: streamHead)
                            },
                            closeSessions: { userID, reason in
                                ChatSocketApp.closeSessions(of: userID, reason: reason, rooms: rooms)
                                cluster.send("x", arguments: [userID] + reason.split(separator: " ").map(String.init))
                            }, readiness: readiness,
                            metrics: {
                                metrics.render(ServerMetrics.Snapshot(
                                    sessions: engine.sessionCount, webSocketSessions: engine.webSocketSessionCount,
                                    connectedSockets: socketIO.connectedSocketCount, queued: writer.queuedCount,
                                    overloaded: writer.isOverloaded, undelivered: sequencer.undelivered, pool: pool.occupancy, hashingPending: hashing.pendingCount))
                            },
                            metricsToken: configuration.metricsToken.map { Array($0.utf8) })
        return serve(handler: OriginGuard(policy: configuration.allowedOrigins, inner: engine.mounted(over: api, preflightsGoToFallback: true)), pool: pool, poolThread: poolThread, description: "database \(configuration.databaseDescription)") {
            // A balancer asking /readyz drains this process from now on.
            readiness.beginStopping()
            // Nothing more is taken from the sockets; what was taken is committed and
            // acknowledged before they close, so no client is told "try again" for a message
            // it sent as the process stopped (its unanswered sends go, resent, to the process
            // it reconnects to).
            engine.stopTakingInput()
            if !writer.waitUntilIdle(timeoutMilliseconds: 5_000) { logger.warning("stopping with messages still being written") }
            // Everyone still here is last seen now (their grace periods would end after the loops).
            if !chat.presence.recordEveryoneSeen(timeoutMilliseconds: 2_000) { logger.warning("stopping before last_seen was stored") }
            engine.closeAllSessions(timeoutMilliseconds: 3_000)
        } afterLoops: {
            listener.stop()
            listenerThread.join()
        }
    }

    /// Messages read at most per read of other processes' writes (a long span, after the
    /// listening connection was away, is read in pages).
    static let streamReadLimit = 2_000

    nonisolated(unsafe) private static var heldUntilExit: [AnyObject] = []

    private static var stopSignals: sigset_t {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        return signals
    }

    /// Starts the loops with `router`, waits for a stop signal, then shuts down in order.
    private func serve(handler router: any HTTPHandler, pool: PostgresPool?, poolThread: PlatformThread?, description: String,
                       beforeShutdown: () -> Void, afterLoops: () -> Void) -> Int32 {
        var signals = Self.stopSignals

        let group = EventLoopGroup(count: configuration.workers)
        // The loops, their connections and the services they reach stay allocated until the
        // process exits (the loops' threads are detached): held from a global, they are not
        // reported as leaks by LeakSanitizer (`make sanitize`) at exit.
        Self.heldUntilExit.append(group)
        let bound: (host: String, port: Int)
        do {
            bound = try HTTPListener.start(on: group.loops, host: configuration.host, port: configuration.port, handler: router,
                                           limits: configuration.httpLimits)
        } catch {
            logger.error("cannot listen: \(error)")
            afterLoops()
            pool?.shutdown()
            poolThread?.join()
            return 1
        }
        group.start()
        print("chat server listening on \(Configuration.url(host: bound.host, port: bound.port)) with \(group.loops.count) event loops; \(description)")
        fflush(nil)
        // The same as a record, for a log collector that reads only standard error.
        logger.info("listening", metadata: ["url": .string(Configuration.url(host: bound.host, port: bound.port)),
                                            "event_loops": .stringConvertible(group.loops.count), "version": .string(chatServerVersion)])

        var received: Int32 = 0
        sigwait(&signals, &received)
        logger.info("received \(received == SIGINT ? "SIGINT" : "SIGTERM"): finishing requests in flight, then stopping")
        beforeShutdown()
        // The loops drain, up to the shutdown time-out or a second signal.
        let drained = group.shutdown(timeoutMilliseconds: configuration.shutdownTimeoutMilliseconds) {
            var none = timespec()
            return sigtimedwait(&signals, nil, &none) > 0  // a second signal, if one is pending; never blocks
        }
        if !drained { logger.warning("stopping with connections still open") }
        afterLoops()
        pool?.shutdown()
        poolThread?.join()
        logger.info("stopped")
        return 0
    }
}
