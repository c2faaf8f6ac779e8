#if canImport(Glibc)
import Glibc
#endif

/// The proxies whose word on the client's address is taken (`TRUSTED_PROXIES`): behind a load
/// balancer every connection comes from the balancer, and the per-address limits (logins,
/// registrations, connections) would lump every user together. For a request from one of
/// them, the client is the rightmost `X-Forwarded-For` address that is not itself a trusted
/// proxy (each proxy appends the address it saw; what a client wrote itself is further left
/// and never reached). Anything unreadable there leaves the connection's address. None by
/// default: a client's own header is never believed.
public struct TrustedProxies: Sendable, Equatable {
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    let addresses: Set<String>

    public static let none = TrustedProxies(addresses: [])

    init(addresses: Set<String>) {
        self.addresses = addresses
    }

    /// A comma-separated list of IP addresses (IPv4 or IPv6 literals).
    public init(setting: String) throws(Invalid) {
        var addresses: Set<String> = []
        for item in setting.split(separator: ",") {
            let text = item.trimmingSpaces()
            guard !text.isEmpty else { continue }
            guard let canonical = Self.canonical(text) else {
                throw Invalid(description: "TRUSTED_PROXIES: '\(text)' is not an IP address (give addresses, comma-separated)")
            }
            addresses.insert(canonical)
        }
        self.addresses = addresses
    }

    public var isEmpty: Bool { addresses.isEmpty }

    /// The client's address for a request that came over a connection from `peer`.
    public func client(of request: HTTPRequest, peer: String) -> String {
        guard !addresses.isEmpty, addresses.contains(Self.canonical(peer) ?? peer), let forwarded = request.combinedHeader("x-forwarded-for") else {
            return peer
        }
        for item in forwarded.split(separator: ",").reversed() {
            guard let address = Self.canonical(item.trimmingSpaces()) else { return peer }
            if !addresses.contains(address) { return address }
        }
        return peer
    }

    /// The address in its one spelling (IPv4-mapped IPv6 as IPv4), or nil for anything else.
    static func canonical(_ text: some StringProtocol) -> String? {
        var text = String(text)
        guard text.utf8.count <= 45, !text.isEmpty else { return nil }
        if text.hasPrefix("::ffff:"), text.contains(".") { text = String(text.dropFirst(7)) }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            guard inet_ntop(AF_INET, &v4, &buffer, socklen_t(buffer.count)) != nil else { return nil }
            return Self.text(buffer)
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &v6, &buffer, socklen_t(buffer.count)) != nil else { return nil }
            return Self.text(buffer)
        }
        return nil
    }

    /// A C string in a buffer, up to its NUL.
    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
