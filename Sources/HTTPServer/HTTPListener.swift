import ServerRuntime

/// HTTP/1.1 on a set of event loops: one SO_REUSEPORT listener per loop (the kernel spreads
/// connections among them), each accepted connection served on the loop that accepted it.
public enum HTTPListener {
    /// Listens on `host:port` on every loop; returns the host and port actually bound (port 0
    /// takes the first loop's kernel-chosen port for them all). The default `::` falls back to
    /// `0.0.0.0` on a machine without IPv6. The first bind is exclusive: another process on
    /// the port is an error, not a silent split of the connections.
    public static func start(on loops: [EventLoop], host: String, port: Int, handler: any HTTPHandler,
                             limits: HTTPConnectionLimits) throws(SocketError) -> (host: String, port: Int) {
        var host = host, port = port
        var listeners: [Int32] = []
        for loop in loops {
            let listener: (fd: Int32, port: Int)
            do {
                listener = try Sockets.listen(host: host, port: port, exclusive: loop.index == loops[0].index)
            } catch {
                if host == "::", listeners.isEmpty, let v4 = try? Sockets.listen(host: "0.0.0.0", port: port, exclusive: true) {
                    host = "0.0.0.0"
                    listener = v4
                } else {
                    for fd in listeners { Sockets.close(fd) }
                    throw error
                }
            }
            listeners.append(listener.fd)
            port = listener.port
        }
        for (loop, fd) in zip(loops, listeners) {
            let dates = HTTPDateCache()
            // What a client gets when the process is out of descriptors (see Acceptor).
            let refusal = {
                HTTPResponse.error(503, "the server is at its connection limit; try again", headers: [("Retry-After", "1")])
                    .serialized(keepAlive: false, date: dates.current)
            }
            _ = Acceptor(fd: fd, loop: loop, refusal: refusal) { [unowned loop] connection in
                _ = HTTPConnection(fd: connection, loop: loop, handler: handler, limits: limits, dates: dates)
            }
        }
        return (host, port)
    }
}
