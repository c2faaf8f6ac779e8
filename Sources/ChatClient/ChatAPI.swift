import Base64
import Foundation
import JSON

/// A user as the server describes it.
public struct ChatUser: Sendable, Equatable {
    public let id: String
    public let email: String?
    public let username: String?

    init(_ json: JSONValue?) throws {
        guard let id = json?["id"]?.stringValue else { throw ClientError("the server's answer has no user id") }
        self.id = id
        email = json?["email"]?.stringValue
        username = json?["username"]?.stringValue
    }

    public init(id: String, email: String?, username: String?) {
        self.id = id
        self.email = email
        self.username = username
    }

    /// How to show the user: name, else email, else a short id.
    public var displayName: String { username ?? email ?? String(id.prefix(8)) }
}

/// A chat message as history or live delivery gives it.
public struct ChatMessageRecord: Sendable, Equatable {
    public let id: String?
    public let from: String
    public let to: String?
    public let text: String
    public let timestamp: String?
    /// Its place in the user's stream (this server's; the Node original gives none).
    public var cursor: String? = nil

    init(id: String?, from: String, to: String?, text: String, timestamp: String?, cursor: String? = nil) {
        self.id = id
        self.from = from
        self.to = to
        self.text = text
        self.timestamp = timestamp
        self.cursor = cursor
    }
}

/// `reader` has read `peer`'s messages up to the cursor `upTo`.
public struct ReadReceiptRecord: Sendable, Equatable {
    public let reader: String
    public let peer: String
    public let upTo: String
}

/// A page of the user's stream (`GET /api/sync`).
public struct StreamPage: Sendable, Equatable {
    public let messages: [ChatMessageRecord]
    /// The receipts in it (`read` events), in stream order.
    public let receipts: [ReadReceiptRecord]
    /// Where the next page starts.
    public let next: String
    /// More follow already.
    public let more: Bool
}

/// The REST API: login (registering on first use when asked), user lookup, history.
public struct ChatAPI: Sendable {
    public enum Failure: Error, CustomStringConvertible, Sendable {
        case unreachable(String)
        case invalidCredentials
        case cannotRegister(String)
        case alreadyRegistered
        case notFound(String)
        case refused(Int, String)

        public var description: String {
            switch self {
            case .unreachable(let why): return "cannot reach the server: \(why)"
            case .invalidCredentials: return "wrong email or password"
            case .cannotRegister(let why): return "cannot register: \(why)"
            case .alreadyRegistered: return "an account with this email exists already"
            case .notFound(let what): return "\(what) not found"
            case .refused(let status, let why): return "the server refused (HTTP \(status)): \(why)"
            }
        }
    }

    public let address: ServerAddress

    public init(address: ServerAddress) {
        self.address = address
    }

    private func call(_ method: String, _ target: String, token: String? = nil, body: JSONValue? = nil) throws(Failure) -> (Int, JSONValue?) {
        var headers: [(String, String)] = []
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        if body != nil { headers.append(("Content-Type", "application/json")) }
        do {
            let response = try HTTPClient(address: address).request(method, target, headers: headers + [("Connection", "close")],
                                                                     body: body.map(JSONWriter.bytes), timeout: 15)
            return (response.status, try? JSONParser.parse(response.body))
        } catch {
            throw .unreachable("\(error)")
        }
    }

    private static func reason(_ json: JSONValue?) -> String {
        json?["error"]?.stringValue ?? json?["message"]?.stringValue ?? "no reason given"
    }

    /// Logs in; with `registerAs`, an unknown account is registered first (then logged in).
    public func login(email: String, password: String, registerAs username: String? = nil) throws(Failure) -> (token: String, user: ChatUser?) {
        let (status, json) = try call("POST", "/api/auth/login", body: ["email": .string(email), "password": .string(password)])
        if status == 200, let token = json?["token"]?.stringValue {
            return (token, try? ChatUser(json?["user"]))
        }
        if status == 401, let username {
            do {
                try register(username: username, email: email, password: password)
            } catch .alreadyRegistered {
                throw .invalidCredentials  // the account exists: the password is wrong
            }
            return try login(email: email, password: password)
        }
        if status == 401 { throw .invalidCredentials }
        throw .refused(status, Self.reason(json))
    }

    /// `POST /api/auth/register`.
    public func register(username: String, email: String, password: String) throws(Failure) {
        let (status, answer) = try call("POST", "/api/auth/register",
                                        body: ["username": .string(username), "email": .string(email), "password": .string(password)])
        if status == 409 { throw .alreadyRegistered }
        if status == 400 { throw .cannotRegister(Self.reason(answer)) }
        guard status == 200 else { throw .refused(status, Self.reason(answer)) }
    }

    /// The user with this email (`GET /api/users?email=`).
    public func user(email: String, token: String) throws(Failure) -> ChatUser {
        let encoded = email.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? email
        let (status, json) = try call("GET", "/api/users?email=\(encoded)", token: token)
        switch status {
        case 200:
            do { return try ChatUser(json) } catch { throw .refused(200, "\(error)") }
        case 404 where json?["error"] != nil:
            throw .notFound("no user with email \(email)")
        case 404:
            throw .refused(404, "this server has no user lookup (the Node original lacks it)")
        default:
            throw .refused(status, Self.reason(json))
        }
    }

    /// The conversation with `peer`, oldest first: the newest `count` messages.
    public func history(with peer: String, token: String, count: Int = 20) throws(Failure) -> [ChatMessageRecord] {
        // History pages oldest first: find the total, then read the last page(s).
        var all: [ChatMessageRecord] = []
        var offset = 0
        while true {
            let (status, json) = try call("GET", "/api/messages/\(peer)?limit=100&offset=\(offset)", token: token)
            guard status == 200, let rows = json?.arrayValue else { throw .refused(status, Self.reason(json)) }
            all += rows.map { row in
                ChatMessageRecord(id: row["id"]?.stringValue, from: row["sender_id"]?.stringValue ?? "", to: row["receiver_id"]?.stringValue,
                                  text: row["content"]?.stringValue ?? "", timestamp: row["created_at"]?.stringValue, cursor: row["cursor"]?.stringValue)
            }
            if rows.count < 100 { break }
            offset += 100
            if all.count > 100 { all.removeFirst(all.count - 100) }
        }
        return Array(all.suffix(count))
    }

    /// The user's stream after `after`: what they received and sent, from any device.
    public func sync(after: String, token: String, limit: Int = 100) throws(Failure) -> StreamPage {
        let encoded = after.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? after
        let (status, json) = try call("GET", "/api/sync?after=\(encoded)&limit=\(limit)", token: token)
        guard status == 200, let events = json?["events"]?.arrayValue, let next = json?["next"]?.stringValue else {
            throw status == 404 ? .notFound("the sync API") : .refused(status, Self.reason(json))
        }
        let messages = events.filter { ($0["type"]?.stringValue ?? "message") == "message" }.map { event in
            ChatMessageRecord(id: event["id"]?.stringValue, from: event["from"]?.stringValue ?? "", to: event["to"]?.stringValue,
                              text: event["message"]?.stringValue ?? "", timestamp: event["timestamp"]?.stringValue,
                              cursor: event["cursor"]?.stringValue)
        }
        let receipts = events.compactMap { event -> ReadReceiptRecord? in
            guard event["type"]?.stringValue == "read", let reader = event["reader"]?.stringValue, let peer = event["peer"]?.stringValue,
                  let upTo = event["up_to"]?.stringValue else { return nil }
            return ReadReceiptRecord(reader: reader, peer: peer, upTo: upTo)
        }
        return StreamPage(messages: messages, receipts: receipts, next: next, more: json?["more"]?.boolValue ?? false)
    }

    /// One of the user's conversations, as `GET /api/conversations` lists them.
    public struct ConversationSummary: Sendable, Equatable {
        public let peer: ChatUser
        public let lastMessage: ChatMessageRecord?
        public let unread: Int
    }

    /// The user's conversations, the newest first (the first `limit`).
    public func conversations(token: String, limit: Int = 20) throws(Failure) -> [ConversationSummary] {
        try conversationPage(token: token, limit: limit).conversations
    }

    /// A page of the user's conversations (after a previous page's `next`), and the next one's start.
    public func conversationPage(token: String, limit: Int = 20, after: String? = nil) throws(Failure) -> (conversations: [ConversationSummary], next: String?) {
        let query = after.map { "&after=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)" } ?? ""
        let (status, json) = try call("GET", "/api/conversations?limit=\(limit)\(query)", token: token)
        guard status == 200, let rows = json?["conversations"]?.arrayValue else {
            throw status == 404 ? .notFound("the conversation list") : .refused(status, Self.reason(json))
        }
        return (rows.compactMap { row in
            guard let peer = try? ChatUser(row["peer"]) else { return nil }
            let last = row["last_message"].flatMap { message -> ChatMessageRecord? in
                guard let text = message["message"]?.stringValue else { return nil }
                return ChatMessageRecord(id: message["id"]?.stringValue, from: message["from"]?.stringValue ?? "", to: message["to"]?.stringValue,
                                         text: text, timestamp: message["timestamp"]?.stringValue, cursor: message["cursor"]?.stringValue)
            }
            return ConversationSummary(peer: peer, lastMessage: last, unread: Int(row["unread"]?.numberValue ?? 0))
        }, json?["next"]?.stringValue)
    }

    /// Whether a user is connected, and when they were last seen (`GET /api/users/:id/presence`).
    public func presence(of userID: String, token: String) throws(Failure) -> (online: Bool, lastSeen: String?) {
        let (status, json) = try call("GET", "/api/users/\(userID)/presence", token: token)
        guard status == 200, let online = json?["online"]?.boolValue else {
            throw status == 404 ? .notFound("presence") : .refused(status, Self.reason(json))
        }
        return (online, json?["last_seen"]?.stringValue)
    }

    /// The place a cursor names, for ordering this client's own messages against a read mark
    /// (`c` and base 36; this client and its server agree on the form).
    public static func position(ofCursor cursor: String?) -> Int64? {
        guard let cursor, cursor.first == "c" else { return nil }
        return Int64(cursor.dropFirst(), radix: 36)
    }

    /// The `id` claim of a JWT (the Node server's login answers only the token).
    public static func userID(fromToken token: String) -> String? {
        let parts = token.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3, let json = Base64.decodeURL(parts[1]), let payload = try? JSONParser.parse(json) else { return nil }
        return payload["id"]?.stringValue
    }
}
