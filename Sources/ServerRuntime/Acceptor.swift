import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// A listening socket on one loop: accepts and gives each connection to that loop.
public final class Acceptor: Selectable {
    public let fd: Int32
    private unowned let loop: EventLoop
    private let makeConnection: (Int32) -> Void
    private var resumeTimer: LoopTimer?

    public init(fd: Int32, loop: EventLoop, makeConnection: @escaping (Int32) -> Void) {
        self.fd = fd
        self.loop = loop
        self.makeConnection = makeConnection
        loop.register(self, events: EPOLLIN.rawValue)
    }

    public func handleEvents(_ events: UInt32) {
        for _ in 0..<64 {
            let client = Sockets.accept(fd)
            if client >= 0 {
                makeConnection(client)
                continue
            }
            if -client == EMFILE || -client == ENFILE || -client == ENOBUFS || -client == ENOMEM {
                // Out of descriptors (or memory): the pending connection would wake the loop
                // again at once, so stop watching the listener and look again in 100 ms.
                guard resumeTimer == nil else { return }
                Log.warning("accept: \(String(cString: strerror(-client))); pausing accepts for 100 ms")
                loop.modify(self, events: 0)
                resumeTimer = loop.schedule(after: 100) { [weak self] in
                    guard let self else { return }
                    self.resumeTimer = nil
                    self.loop.modify(self, events: EPOLLIN.rawValue)
                }
            }
            return
        }
    }

    public func tick(now: Int64) {}

    public func beginShutdown() {
        resumeTimer?.cancel()
        loop.deregisterAndClose(self)
    }
}
