import ChatCore
import CoreMetrics
import JSON
import ServerRuntime
import SocketIO
import SocketIOServer

/// Applies `EventRateLimits` to a socket: every event the client sends (with or without a
/// handler, over either transport) takes a token from its user's bucket for its kind. A refused
/// `send_message` is answered as any refused message (`{ok:false, error, retry_after_ms}` or
/// `message_error`) and nothing is stored; other refused events get the same in their ack, or
/// are dropped without one. A socket that goes on sending while refused is disconnected: from
/// then on its events are dropped unanswered, and a second later (so the acks of messages it
/// had sent before, committing meanwhile, reach it) it gets `session_closed {reason}`, then the
/// DISCONNECT packet, then its connection closes.
struct SocketRateLimiter: Sendable {
    let limits: EventRateLimits

    /// How long a socket being disconnected still gets the answers to what it sent before.
    static let disconnectGraceMilliseconds: Int64 = 1_000

    /// One socket's count of refusals: confined to its loop.
    private final class Refusals {
        var bucket: TokenBucket
        var disconnecting = false

        init(_ bucket: TokenBucket) { self.bucket = bucket }
    }

    /// At CONNECT, once the token is checked and before the socket exists: nil to let it in
    /// (it is then counted, and `attach` follows at once), or why not.
    func admit(userID: String) -> String? {
        guard limits.connect(userID: userID) == nil else { return nil }
        RateLimitMetrics.socketsPerUser.increment()
        return "too many connections for this user (\(limits.settings.socketsPerUser) open); close one first"
    }

    /// The socket `admit` counted in: its events are limited from now on, and it is counted
    /// out when it goes.
    func attach(to socket: SocketIOSocket, userID: String) {
        guard let user = limits.buckets(of: userID) else { return }
        let allowance = limits.settings.refusalsBeforeDisconnect
        let refusals = Refusals(TokenBucket(burst: allowance, perSecond: Double(allowance) / 10, now: socket.loop.now))
        socket.eventGate = { [limits] event, arguments, ack in
            guard !refusals.disconnecting else { return false }
            let kind = EventRateLimits.Kind(event: event)
            guard let wait = user.admit(kind, now: socket.loop.now) else { return true }
            if refusals.bucket.take(now: socket.loop.now) != nil {
                refusals.disconnecting = true
                RateLimitMetrics.disconnects.increment()
                let limit = limits.settings[kind]
                let reason = "too many events after being told to slow down (\(limit.burst) at once, \(Self.rate(limit.perSecond)) a second): disconnected"
                _ = socket.loop.schedule(after: Self.disconnectGraceMilliseconds) { ChatSocketApp.closeSession(socket, reason: reason) }
                return false
            }
            Self.refuse(kind, socket: socket, arguments: arguments, ack: ack, retryAfterMilliseconds: wait)
            return false
        }
        socket.onDisconnect { _ in limits.release(userID: userID) }
    }

    static func refuse(_ kind: EventRateLimits.Kind, socket: SocketIOSocket, arguments: ArraySlice<JSONValue>, ack: SocketIOSocket.Ack?,
                       retryAfterMilliseconds wait: Int64) {
        RateLimitMetrics.refused[kind.rawValue].increment()
        switch kind {
        case .message:
            MessageRefusal.rateLimited.count()
            let origin = ChatSocketApp.Origin(socket: socket, ackID: ack?.id, payload: arguments.first)
            socket.sendEncoded(ChatSocketApp.refusal("too many messages; slow down", to: origin, retryAfterMilliseconds: wait))
        case .typing, .receipt, .other:
            let what = kind == .typing ? "typing events" : kind == .receipt ? "read receipts" : "events"
            ack?([["ok": false, "error": .string("too many \(what); slow down"), "retry_after_ms": .number(Double(wait))]])
        }
    }

    private static func rate(_ perSecond: Double) -> String {
        perSecond == perSecond.rounded() ? String(Int(perSecond)) : String(perSecond)
    }
}

/// `chat_rate_limited_total{limit}`: events refused by their kind's limit (message, typing,
/// receipt, other) and connections by the sockets-per-user cap; and the sockets disconnected
/// for going on after being told to slow down. (A refused message also counts in
/// `chat_messages_refused_total{reason="rate_limited"}`.)
enum RateLimitMetrics {
    static let refused = EventRateLimits.Kind.allCases.map { kind in
        CoreMetrics.Counter(label: "chat_rate_limited_total", dimensions: [("limit", "\(kind)")])
    }
    static let socketsPerUser = CoreMetrics.Counter(label: "chat_rate_limited_total", dimensions: [("limit", "sockets_per_user")])
    static let disconnects = CoreMetrics.Counter(label: "chat_rate_limit_disconnects_total")

    static func registerAll() { _ = (refused, socketsPerUser, disconnects) }
}
