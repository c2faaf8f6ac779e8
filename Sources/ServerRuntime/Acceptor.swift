import CLinux

#if canImport(Glibc)
import Glibc
#endif
import Logging

private let logger = Logger(label: "chat.server")

/// A listening socket on one loop: accepts and gives each connection to that loop.
///
/// Out of descriptors, it still answers: it keeps one in reserve (an open `/dev/null`), and
/// when `accept` fails for want of descriptors it frees it, accepts, sends `refusal` (an HTTP
/// 503), closes, and takes the reserve again — so a client at the limit is told, not left
/// hanging, and connections already open are untouched.
public final class Acceptor: Selectable {
    public let fd: Int32
    private unowned let loop: EventLoop
    private let makeConnection: (Int32) -> Void
    private let refusal: (() -> [UInt8])?
    private var resumeTimer: LoopTimer?
    private var reserveFD: Int32

    public init(fd: Int32, loop: EventLoop, refusal: (() -> [UInt8])? = nil, makeConnection: @escaping (Int32) -> Void) {
        self.fd = fd
        self.loop = loop
        self.refusal = refusal
        self.makeConnection = makeConnection
        reserveFD = Self.openReserve()
        loop.register(self, events: EPOLLIN.rawValue)
    }

    private static func openReserve() -> Int32 {
        open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    /// Frees the reserve descriptor to accept one connection, tells it `refusal`, closes it.
    /// False when there was no reserve or nothing to accept.
    private func refuseOneWithReserve() -> Bool {
        guard reserveFD >= 0, let refusal else { return false }
        Glibc.close(reserveFD)
        reserveFD = -1
        defer { reserveFD = Self.openReserve() }
        let client = Sockets.accept(fd)
        guard client >= 0 else { return false }
        _ = refusal().withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        // What the client already sent is read first: closing with unread input would reset the
        // connection, and the client could lose the answer.
        var scratch = [UInt8](repeating: 0, count: 4096)
        _ = recv(client, &scratch, scratch.count, Int32(MSG_DONTWAIT))
        shutdown(client, Int32(SHUT_WR))
        Glibc.close(client)
        return true
    }

    public func handleEvents(_ events: UInt32) {
        for _ in 0..<64 {
            let client = Sockets.accept(fd)
            if client >= 0 {
                makeConnection(client)
                continue
            }
            if -client == EMFILE || -client == ENFILE, refuseOneWithReserve() { continue }
            if -client == EMFILE || -client == ENFILE || -client == ENOBUFS || -client == ENOMEM {
                // Out of descriptors (or memory): the pending connection would wake the loop
                // again at once, so stop watching the listener and look again in 100 ms.
                guard resumeTimer == nil else { return }
                logger.warning("accept: \(String(cString: strerror(-client))); pausing accepts for 100 ms")
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
        if reserveFD >= 0 { Glibc.close(reserveFD); reserveFD = -1 }
        loop.deregisterAndClose(self)
    }
}
