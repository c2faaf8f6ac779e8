import ChatCore
import HTTPServer
import JSON
import JWT
import ServerRuntime

/// The REST API of CONTRACT.md: routes, CORS, and the mapping of service results to statuses
/// and bodies. Everything slow happens in the services, off the event loop.
struct APIRouter: HTTPHandler {
    let accounts: AccountService
    let messages: MessageService
    let conversations: ConversationService
    let presence: PresenceTracker
    let blocks: BlockList
    let store: any ChatStore
    /// Tells the sockets of both sides that a watermark moved, and the receipt's place.
    let announceRead: @Sendable (_ reader: String, _ peer: String, _ readSeq: Int64, _ position: Int64) -> Void
    /// Ends every live socket of a user whose tokens were just revoked, telling it why.
    let closeSessions: @Sendable (_ userID: String, _ reason: String) -> Void
    let readiness: Readiness
    /// The Prometheus exposition, read now (`ServerMetrics`).
    let metrics: @Sendable () -> [UInt8]
    /// What `GET /metrics` asks for in `Authorization: Bearer …`, if anything (`METRICS_TOKEN`).
    let metricsToken: [UInt8]?

    private static let cors: [(name: String, value: String)] = [("Access-Control-Allow-Origin", "*"),
                                                                ("Access-Control-Expose-Headers", "X-Request-Id")]
    /// Every literal segment of the routes below and of the web page's files.
    static let routeWords: Set<String> = ["api", "auth", "register", "login", "logout", "password", "refresh", "messages", "sync",
                                          "conversations", "read", "users", "presence", "block", "blocks", "metrics", "livez", "readyz",
                                          "healthz", "index.html", "chat.js", "chat.css", "openapi.json"]

    func handle(_ request: HTTPRequest, on loop: EventLoop, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        let segments = request.path.split(separator: "/", omittingEmptySubsequences: true)
        let lowered = segments.map { $0.lowercased() }
        let caller = Caller()
        let finish: @Sendable (HTTPResponse, _ route: String) -> Void = { response, route in
            var response = response
            response.headers += Self.cors
            response.userID = caller.userID.withLock { $0 }
            HTTPRequestMetrics.count(route: route, status: response.status)
            respond(response)
        }
        // The route as a template: the API's own words kept, anything else (an id) `:id`.
        let route = "/" + lowered.map { Self.routeWords.contains($0) ? $0 : ":id" }.joined(separator: "/")
        let reply: @Sendable (HTTPResponse) -> Void = { finish($0, route) }
        if request.method == "OPTIONS" { return finish(preflight(request), "preflight") }

        let isGet = request.method == "GET" || request.method == "HEAD"

        switch lowered {
        case ["api", "auth", "register"]:
            guard request.method == "POST" else { return reply(methodNotAllowed(["POST"])) }
            withJSONBody(request, reply) { body in
                accounts.register(body, from: request.clientAddress) { result in
                    if case .success(let user) = result { caller.userID.withLock { $0 = user.id } }
                    Self.tarpit(result, on: loop, reply) { user in .json(200, ["message": "User registered", "user": userJSON(user)]) }
                }
            }
        case ["api", "auth", "login"]:
            guard request.method == "POST" else { return reply(methodNotAllowed(["POST"])) }
            withJSONBody(request, reply) { body in
                accounts.login(body, from: request.clientAddress) { result in
                    if case .success(let session) = result { caller.userID.withLock { $0 = session.user.id } }
                    Self.tarpit(result, on: loop, reply) { session in .json(200, ["token": .string(session.token), "user": userJSON(session.user)]) }
                }
            }
        case ["api", "auth", "logout"]:
            guard request.method == "POST" else { return reply(methodNotAllowed(["POST"])) }
            authenticated(request, caller, reply) { [closeSessions] userID in
                accounts.logout(userID: userID) { result in
                    if case .success = result { closeSessions(userID, "logged out") }
                    reply(answer(result) { .json(200, ["message": "Logged out"]) })
                }
            }
        case ["api", "auth", "password"]:
            guard request.method == "POST" else { return reply(methodNotAllowed(["POST"])) }
            authenticated(request, caller, reply) { [closeSessions] userID in
                withJSONBody(request, reply) { body in
                    accounts.changePassword(userID: userID, body, from: request.clientAddress) { result in
                        if case .success = result { closeSessions(userID, "password changed") }
                        reply(answer(result) { session in
                            .json(200, ["message": "Password changed", "token": .string(session.token), "user": userJSON(session.user)])
                        })
                    }
                }
            }
        case ["api", "auth", "refresh"]:
            guard request.method == "POST" else { return reply(methodNotAllowed(["POST"])) }
            withAuthentication(request, caller, reply) { authenticated in
                reply(answer(accounts.refresh(authenticated)) { fresh in
                    .json(200, ["token": .string(fresh.token), "expires_at": .number(Double(fresh.expiresAt))])
                })
            }
        case _ where lowered.count == 3 && lowered[0] == "api" && lowered[1] == "messages":
            guard isGet else { return reply(methodNotAllowed(["GET", "HEAD"])) }
            authenticated(request, caller, reply) { callerID in
                guard let otherID = PercentDecoding.decode(segments[2], plusIsSpace: false) else {
                    return reply(.error(400, "userId must be a UUID"))
                }
                let query = MessageService.HistoryQuery(limit: request.queryParameter("limit"), offset: request.queryParameter("offset"),
                                                        before: request.queryParameter("before"), after: request.queryParameter("after"),
                                                        order: request.queryParameter("order"))
                messages.history(callerID: callerID, otherID: otherID, query: query) { result in
                    reply(answer(result) { .json(200, .array($0.map(messageJSON))) })
                }
            }
        case ["api", "sync"]:
            guard isGet else { return reply(methodNotAllowed(["GET", "HEAD"])) }
            authenticated(request, caller, reply) { callerID in
                guard case .success(let limit) = wholeNumber(request, "limit", reply) else { return }
                messages.sync(callerID: callerID, after: request.queryParameter("after"), limit: limit) { result in
                    reply(answer(result) { .json(200, .object(SyncResponse.json($0, for: callerID))) })
                }
            }
        case ["api", "conversations"]:
            guard isGet else { return reply(methodNotAllowed(["GET", "HEAD"])) }
            authenticated(request, caller, reply) { callerID in
                guard case .success(let limit) = wholeNumber(request, "limit", reply) else { return }
                conversations.list(userID: callerID, limit: limit, after: request.queryParameter("after")) { result in
                    reply(answer(result) { page in
                        .json(200, ["conversations": .array(page.conversations.map(conversationJSON)), "next": page.next.map(JSONValue.string) ?? .null])
                    })
                }
            }
        case _ where lowered.count == 4 && lowered[0] == "api" && lowered[1] == "conversations" && lowered[3] == "read":
            guard request.method == "POST" else { return reply(methodNotAllowed(["POST"])) }
            authenticated(request, caller, reply) { callerID in
                guard let peer = PercentDecoding.decode(segments[2], plusIsSpace: false).flatMap(Validation.uuid) else {
                    return reply(.error(400, "the user id in the path must be a UUID"))
                }
                withJSONBody(request, reply) { body in
                    conversations.markRead(userID: callerID, peer: peer, upTo: body["up_to"]?.stringValue) { [announceRead] result in
                        if case .success(let mark) = result, let position = mark.receiptSeq {
                            announceRead(callerID, peer, mark.readSeq, position)
                        }
                        reply(answer(result) { .json(200, .object(ChatSocketApp.readMarkJSON($0))) })
                    }
                }
            }
        case _ where lowered.count == 4 && lowered[0] == "api" && lowered[1] == "users" && lowered[3] == "presence":
            guard isGet else { return reply(methodNotAllowed(["GET", "HEAD"])) }
            authenticated(request, caller, reply) { callerID in
                guard let userID = PercentDecoding.decode(segments[2], plusIsSpace: false).flatMap(Validation.uuid) else {
                    return reply(.error(400, "the user id must be a UUID"))
                }
                presence.presence(of: userID, to: callerID) { result in
                    switch result {
                    case .failure(let error): reply(Self.response(for: ServiceError(error)))
                    case .success(nil): reply(.error(404, "User not found"))
                    case .success(let found?):
                        reply(.json(200, ["user": .string(userID), "online": .bool(found.online), "last_seen": found.lastSeen.map(JSONValue.string) ?? .null]))
                    }
                }
            }
        case _ where lowered.count == 4 && lowered[0] == "api" && lowered[1] == "users" && lowered[3] == "block":
            guard request.method == "POST" || request.method == "DELETE" else { return reply(methodNotAllowed(["POST", "DELETE"])) }
            let blocking = request.method == "POST"
            authenticated(request, caller, reply) { callerID in
                let target = PercentDecoding.decode(segments[2], plusIsSpace: false)
                blocks.set(blocker: callerID, target: target, blocking: blocking) { result in
                    reply(answer(result) { .json(200, ["user": .string(Validation.uuid(target ?? "") ?? ""), "blocked": .bool(blocking)]) })
                }
            }
        case ["api", "blocks"]:
            guard isGet else { return reply(methodNotAllowed(["GET", "HEAD"])) }
            authenticated(request, caller, reply) { callerID in
                blocks.list(blocker: callerID) { result in
                    reply(answer(result) { blocked in
                        .json(200, ["blocked": .array(blocked.map { ["user": userJSON($0.user), "since": .string($0.since)] })])
                    })
                }
            }
        case ["api", "users"]:
            guard isGet else { return reply(methodNotAllowed(["GET", "HEAD"])) }
            authenticated(request, caller, reply) { _ in
                if let query = request.queryParameter("q") {
                    guard case .success(let limit) = wholeNumber(request, "limit", reply) else { return }
                    return accounts.searchUsers(query: query, limit: limit, after: request.queryParameter("after")) { result in
                        reply(answer(result) { page in
                            .json(200, ["users": .array(page.users.map(userJSON)), "next": page.next.map(JSONValue.string) ?? .null])
                        })
                    }
                }
                accounts.findUser(email: request.queryParameter("email")) { result in
                    reply(answer(result) { .json(200, userJSON($0)) })
                }
            }
        case ["api", "openapi.json"]:
            // The API's description (OpenAPI 3.1, Sources/ChatServer/openapi.json), compiled in.
            guard isGet else { return reply(methodNotAllowed(["GET", "HEAD"])) }
            reply(HTTPResponse(status: 200, headers: [("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-cache")],
                               body: PackageResources.openapi_json))
        case ["metrics"]:
            guard isGet else { return reply(methodNotAllowed(["GET", "HEAD"])) }
            if let metricsToken {
                let header = request.header("authorization") ?? ""
                let presented = header.lowercased().hasPrefix("bearer ") ? Array(header.utf8.dropFirst(7)) : []
                guard constantTimeEqual(presented, metricsToken) else {
                    return reply(.json(401, ["code": 401, "message": "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>"],
                                       headers: [("WWW-Authenticate", "Bearer")]))
                }
            }
            reply(HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: metrics()))
        case ["livez"]:
            // The process serves: nothing else is asked.
            guard isGet else { return reply(methodNotAllowed(["GET", "HEAD"])) }
            reply(.json(200, ["status": "ok"]))
        case ["readyz"]:
            guard isGet else { return reply(methodNotAllowed(["GET", "HEAD"])) }
            readiness.reasons { reasons in
                if reasons.isEmpty { return reply(.json(200, ["status": "ready"])) }
                reply(.json(503, ["status": "unavailable", "reasons": .array(reasons.map(JSONValue.string))], headers: [("Retry-After", "1")]))
            }
        case ["healthz"]:
            guard isGet else { return reply(methodNotAllowed(["GET", "HEAD"])) }
            store.checkHealth { result in
                switch result {
                case .success: reply(.json(200, ["status": "ok"]))
                case .failure: reply(.json(503, ["status": "unavailable", "error": "database unavailable"], headers: [("Retry-After", "1")]))
                }
            }
        default:
            if let page = WebPage.response(for: String(request.path)) {
                guard isGet else { return reply(methodNotAllowed(["GET", "HEAD"])) }
                return reply(page)
            }
            // No route: one series for all such paths, whatever they are.
            finish(.error(404, "Not found: \(request.method) \(request.path)"), "unmatched")
        }
    }

    /// How long a throttled login or registration waits for its 429. The connection is not
    /// read meanwhile (one request at a time), so a client that keeps guessing gets one answer
    /// a second per connection and the server spends almost nothing on it: answered at once,
    /// a guessing storm at a locked account took most of a core in 429s (`make bench`).
    static let throttledAnswerDelayMilliseconds: Int64 = 1_000

    /// Answers as `answer` does; a throttled refusal only after `throttledAnswerDelayMilliseconds`.
    private static func tarpit<T>(_ result: Result<T, ServiceError>, on loop: EventLoop, _ reply: @escaping @Sendable (HTTPResponse) -> Void,
                                  _ success: (T) -> HTTPResponse) {
        let response = answer(result, success)
        guard case .failure(let error) = result, case .tooManyRequests = error.kind else { return reply(response) }
        loop.execute { _ = loop.schedule(after: throttledAnswerDelayMilliseconds) { reply(response) } }
    }

    /// What the `cors` npm package answers to a preflight: 204, the allowed methods, and the
    /// requested headers reflected.
    private func preflight(_ request: HTTPRequest) -> HTTPResponse {
        var headers: [(name: String, value: String)] = [("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")]
        if let requested = request.header("access-control-request-headers") {
            headers.append(("Access-Control-Allow-Headers", requested))
        }
        headers.append(("Vary", "Access-Control-Request-Headers"))
        return HTTPResponse(status: 204, headers: headers)
    }

    private func methodNotAllowed(_ allowed: [String]) -> HTTPResponse {
        .error(405, "Method not allowed; use \(allowed.joined(separator: " or "))", headers: [("Allow", (allowed + ["OPTIONS"]).joined(separator: ", "))])
    }

    /// An optional whole-number query parameter; a value that is none is answered with 400.
    private func wholeNumber(_ request: HTTPRequest, _ name: String, _ reply: @Sendable (HTTPResponse) -> Void) -> Result<Int?, ServiceError> {
        guard let text = request.queryParameter(name) else { return .success(nil) }
        guard let number = Int(text) else {
            let error = ServiceError.invalidInput("\(name) must be a whole number")
            reply(Self.response(for: error))
            return .failure(error)
        }
        return .success(number)
    }

    /// Goes on with the caller's user id once the `Authorization` header's token is checked
    /// (at once when its generation is in memory), or answers 401/403.
    private func authenticated(_ request: HTTPRequest, _ caller: Caller, _ reply: @escaping @Sendable (HTTPResponse) -> Void,
                               _ next: @escaping @Sendable (String) -> Void) {
        withAuthentication(request, caller, reply) { next($0.userID) }
    }

    private func withAuthentication(_ request: HTTPRequest, _ caller: Caller, _ reply: @escaping @Sendable (HTTPResponse) -> Void,
                                    _ next: @escaping @Sendable (AccountService.Authenticated) -> Void) {
        switch AccountService.token(authorizationHeader: request.header("authorization")) {
        case .failure(let error): reply(Self.response(for: error))
        case .success(let token):
            accounts.authenticate(token: token) { result in
                switch result {
                case .success(let authenticated):
                    caller.userID.withLock { $0 = authenticated.userID }
                    next(authenticated)
                case .failure(let error): reply(Self.response(for: error))
                }
            }
        }
    }

    /// Parses a JSON body, answering 415 for another media type and 400 for bad JSON.
    private func withJSONBody(_ request: HTTPRequest, _ reply: @Sendable (HTTPResponse) -> Void, _ body: (JSONValue) -> Void) {
        if let contentType = request.header("content-type") {
            let mediaType = contentType.split(separator: ";", maxSplits: 1).first.map { $0.trimmingSpaces().lowercased() } ?? ""
            guard mediaType == "application/json" || mediaType.hasSuffix("+json") else {
                return reply(.error(415, "Content-Type must be application/json"))
            }
        }
        guard !request.body.isEmpty else { return reply(.error(400, "Request body must be a JSON object")) }
        do {
            body(try JSONParser.parse(request.body))
        } catch {
            reply(.error(400, "Malformed JSON: \(error)"))
        }
    }

    static func response(for error: ServiceError) -> HTTPResponse {
        switch error.kind {
        case .invalidInput: return .error(400, error.message)
        case .missingToken, .invalidCredentials: return .json(401, ["message": .string(error.message)])
        case .invalidToken: return .json(403, ["message": .string(error.message)])
        case .notFound: return .error(404, error.message)
        case .conflict: return .error(409, error.message)
        case .unavailable: return .error(503, error.message, headers: [("Retry-After", "1")])
        case .tooManyRequests(let seconds): return .error(429, error.message, headers: [("Retry-After", String(seconds))])
        case .internalError: return .error(500, error.message)
        }
    }
}

/// The success response, or the one that maps the service's error.
private func answer<T>(_ result: Result<T, ServiceError>, _ success: (T) -> HTTPResponse) -> HTTPResponse {
    switch result {
    case .success(let value): return success(value)
    case .failure(let error): return APIRouter.response(for: error)
    }
}

private func userJSON(_ user: User) -> JSONValue {
    ["id": .string(user.id), "email": .string(user.email), "username": user.username.map(JSONValue.string) ?? .null]
}

private func messageJSON(_ message: ChatMessage) -> JSONValue {
    func optional(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
    var object = JSONObject([("id", .string(message.id)), ("sender_id", optional(message.senderID)), ("receiver_id", optional(message.receiverID)),
                             ("content", optional(message.content)), ("created_at", optional(message.createdAt))])
    // Where the message is in both users' streams: a history bound, or where a sync goes on.
    if let seq = message.seq { object["cursor"] = .string(StreamCursor.encode(seq)) }
    return .object(object)
}

private func conversationJSON(_ conversation: Conversation) -> JSONValue {
    var last: JSONValue = .null
    if let message = conversation.lastMessage {
        func optional(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
        last = .object(JSONObject([("id", .string(message.id)), ("from", optional(message.senderID)), ("to", optional(message.receiverID)),
                                   ("message", optional(message.content)), ("timestamp", optional(message.createdAt)),
                                   ("cursor", .string(StreamCursor.encode(conversation.lastSeq)))]))
    }
    return .object(JSONObject([("peer", userJSON(conversation.peer)), ("last_message", last), ("unread", .number(Double(conversation.unread))),
                               ("read_up_to", .string(StreamCursor.encode(conversation.readSeq))),
                               ("peer_read_up_to", .string(StreamCursor.encode(conversation.peerReadSeq)))]))
}

/// Who made a request, once known (a verified token, a login, a registration): the request's
/// log line names them. Set on whichever thread verified them, read where the answer goes.
private final class Caller: Sendable {
    let userID = Locked<String?>(nil)
}
