/// A server address: `http://host:port` (TLS belongs to a proxy in front).
public struct ServerAddress: Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(_ url: String) throws {
        var rest = Substring(url)
        if rest.hasPrefix("http://") { rest = rest.dropFirst(7) }
        else if rest.hasPrefix("ws://") { rest = rest.dropFirst(5) }
        else if rest.hasPrefix("https://") || rest.hasPrefix("wss://") {
            throw ClientError("\(url): TLS is not built in; use http:// (behind a TLS proxy if needed)")
        } else if rest.contains("://") {
            throw ClientError("\(url): the server URL must start with http://")
        }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            port = after.hasPrefix(":") ? Int(after.dropFirst()) ?? -1 : 80
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            port = Int(rest[rest.index(after: colon)...]) ?? -1
        } else {
            host = String(rest)
            port = 80
        }
        guard !host.isEmpty, (1...65535).contains(port) else { throw ClientError("\(url): not a valid server URL") }
    }

    /// `host:port` as a Host header and URLs write it (an IPv6 address in brackets).
    public var hostAndPort: String { "\(host.contains(":") ? "[\(host)]" : host):\(port)" }

    public var description: String { "http://\(hostAndPort)" }
}
