import ServerRuntime

/// Which web pages may talk to this server: the defence against cross-site requests and
/// cross-site WebSocket hijacking, applied in front of every route (`OriginGuard`).
///
/// Only browsers send `Origin`, and they cannot forge it; a request without one (curl, the
/// terminal clients, python-socketio) is not a page's and passes. This server's own page is
/// not let through by comparing `Origin` with `Host`: a DNS-rebinding page makes those agree;
/// its URL goes in the list like any other.
public enum OriginPolicy: Sendable, Equatable {
    /// Every origin (`ALLOWED_ORIGINS=*`, the default): CORS answers `*`, as the Node server's.
    case any
    /// These origins only, each `scheme://host[:port]` lower-cased.
    case only(Set<String>)

    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// From a setting: `*`, or origins separated by commas or spaces (`https://chat.example.com,
    /// http://localhost:3000`). Anything that is no `http(s)://host[:port]` origin is refused.
    public init(setting: String) throws(Invalid) {
        let entries = setting.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
        if entries == ["*"] || entries.isEmpty {
            self = .any
            return
        }
        var origins: Set<String> = []
        for entry in entries {
            guard let origin = Self.normalized(entry) else {
                throw Invalid(description: "ALLOWED_ORIGINS: '\(entry)' is not an origin like https://chat.example.com (scheme, host and port only)")
            }
            origins.insert(origin)
        }
        self = .only(origins)
    }

    /// `scheme://host[:port]` lower-cased, without a default port; nil for anything else (a
    /// path, a query, credentials, another scheme, or "null").
    static func normalized(_ text: String) -> String? {
        let lowered = text.lowercased()
        let scheme: String
        if lowered.hasPrefix("http://") { scheme = "http" } else if lowered.hasPrefix("https://") { scheme = "https" } else { return nil }
        var authority = Substring(lowered.dropFirst(scheme.count + 3))
        if authority.hasSuffix("/") { authority = authority.dropLast() }
        guard !authority.isEmpty, !authority.contains(where: { "/?#@ \t".contains($0) }) else { return nil }
        if (scheme == "http" && authority.hasSuffix(":80")) || (scheme == "https" && authority.hasSuffix(":443")) {
            authority = authority.dropLast(scheme == "http" ? 3 : 4)
        }
        return "\(scheme)://\(authority)"
    }

    /// Whether a request with this `Origin` (nil: none) may be answered.
    public func allows(origin: String?) -> Bool {
        guard case .only(let origins) = self, let origin else { return true }
        return Self.normalized(origin).map(origins.contains) ?? false
    }
}

/// The policy in front of a handler: a request from an origin it refuses gets 403 and a JSON
/// body saying so (the WebSocket upgrade and the Engine.IO handshake included: they are HTTP
/// requests first); an allowed one gets the CORS answer the policy gives — `*`, or its own
/// origin echoed with `Vary: Origin` — in place of whatever the handler put.
public struct OriginGuard: HTTPHandler {
    let policy: OriginPolicy
    let inner: any HTTPHandler

    public init(policy: OriginPolicy, inner: any HTTPHandler) {
        self.policy = policy
        self.inner = inner
    }

    public func handle(_ request: HTTPRequest, on loop: EventLoop, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        guard case .only = policy else { return inner.handle(request, on: loop, respond: respond) }
        let origin = request.header("origin")
        guard policy.allows(origin: origin) else {
            return respond(.error(403, "origin \(String((origin ?? "").prefix(200))) is not allowed (ALLOWED_ORIGINS)", headers: [("Vary", "Origin")]))
        }
        guard let origin else { return inner.handle(request, on: loop, respond: respond) }
        inner.handle(request, on: loop) { response in
            var response = response
            guard response.headers.contains(where: { $0.name.lowercased() == "access-control-allow-origin" }) else { return respond(response) }
            response.headers.removeAll { $0.name.lowercased() == "access-control-allow-origin" }
            response.headers.append(("Access-Control-Allow-Origin", origin))
            response.headers.append(("Vary", "Origin"))
            respond(response)
        }
    }
}
