import ServerRuntime

/// Answers requests. `respond` may be called on any thread, exactly once.
public protocol HTTPHandler: Sendable {
    /// `loop` is the one the request arrived on; `respond` may be called from any thread.
    func handle(_ request: HTTPRequest, on loop: EventLoop, respond: @escaping @Sendable (HTTPResponse) -> Void)
}

/// Limits and time-outs every connection obeys.
public struct HTTPConnectionLimits: Sendable {
    public var parser = HTTPRequestParser.Limits()
    public var headerTimeoutMilliseconds: Int64 = 10_000
    public var requestTimeoutMilliseconds: Int64 = 30_000
    public var idleTimeoutMilliseconds: Int64 = 60_000
    /// A peer that accepts none of our bytes for this long is dropped.
    public var writeStallMilliseconds: Int64 = 30_000
    /// Past this many unsent bytes, no further pipelined request is read.
    public var maxPendingOutput = 256 * 1024
    /// After an error answer, how long to drain what the client still sends before closing.
    public var lingerMilliseconds: Int64 = 2_000
    /// Whose `X-Forwarded-For` names the client (`HTTPRequest.clientAddress`).
    public var trustedProxies = TrustedProxies.none

    public init() {}
}
