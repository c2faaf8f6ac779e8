/// Conversation history, independent of HTTP.
public final class MessageService: Sendable {
    public static let defaultLimit = 20
    public static let maxLimit = 100

    private let store: any ChatStore

    public init(store: any ChatStore) {
        self.store = store
    }

    /// The raw query values of a history request (each nil when absent).
    public struct HistoryQuery: Sendable {
        public var limit: String?
        public var offset: String?
        public var before: String?
        public var after: String?
        public var order: String?

        public init(limit: String? = nil, offset: String? = nil, before: String? = nil, after: String? = nil, order: String? = nil) {
            self.limit = limit
            self.offset = offset
            self.before = before
            self.after = after
            self.order = order
        }
    }

    /// Messages between `callerID` and `otherID`. `limit` and `offset` are read like the Node
    /// server did (`parseInt(x) || default`), then clamped: limit to 1…100, offset to ≥ 0.
    /// `before` and `after` are ids of messages of this conversation or cursors (exclusive
    /// bounds, so a client pages with the id at the end of its last page); `order` is `asc` (oldest first,
    /// the default and Part 1's order) or `desc` (newest first: the latest page, then back).
    public func history(callerID: String, otherID: String, query: HistoryQuery,
                        completion: @escaping @Sendable (Result<[ChatMessage], ServiceError>) -> Void) {
        guard let other = Validation.uuid(otherID) else {
            return completion(.failure(.invalidInput("userId must be a UUID")))
        }
        var page = HistoryPage(limit: min(max(Self.parseIntLikeJavaScript(query.limit).flatMap { $0 == 0 ? nil : $0 } ?? Self.defaultLimit, 1), Self.maxLimit),
                               offset: max(Self.parseIntLikeJavaScript(query.offset) ?? 0, 0))
        switch query.order {
        case nil, "asc": page.newestFirst = false
        case "desc": page.newestFirst = true
        case let other?: return completion(.failure(.invalidInput("order must be asc or desc, not '\(other.prefix(40))'")))
        }
        for (name, value) in [("before", query.before), ("after", query.after)] {
            guard let value else { continue }
            let bound: HistoryBound
            if let id = Validation.uuid(value) {
                bound = .message(id: id)
            } else if let seq = StreamCursor.decode(value) {
                bound = .position(seq)
            } else {
                return completion(.failure(.invalidInput("\(name) must be the id of a message in this conversation or a cursor")))
            }
            if name == "before" { page.before = bound } else { page.after = bound }
        }
        store.history(between: callerID, and: other, page: page) { result in
            completion(result.mapError(ServiceError.init))
        }
    }

    public static let defaultSyncLimit = 100
    public static let maxSyncLimit = 1000

    /// What a user's stream holds: messages they received or sent, and read receipts of their
    /// conversations (either side's).
    public enum StreamEvent: Sendable, Equatable {
        case message(ChatMessage)
        case receipt(ReceiptState)

        public var position: Int64 {
            switch self {
            case .message(let message): message.seq ?? 0
            case .receipt(let receipt): receipt.position
            }
        }
    }

    /// A page of a user's stream and where the next one starts.
    public struct SyncPage: Sendable, Equatable {
        /// In stream order: what the user received and what they sent, from any device, and
        /// the receipts of their conversations (a conversation's latest only).
        public let events: [StreamEvent]
        /// The cursor after the last of `events` (`after` itself when there is none).
        public let next: String
        /// More follow `next` already: ask again at once. False: nothing newer yet.
        public let more: Bool

        public init(events: [StreamEvent], next: String, more: Bool) {
            self.events = events
            self.next = next
            self.more = more
        }

        /// The messages among `events`, in order.
        public var messages: [ChatMessage] { events.compactMap { if case .message(let message) = $0 { message } else { nil } } }
    }

    /// The stream of `callerID` after the cursor `after` (nil: from the start), at most `limit`
    /// events (default 100, clamped to 1…1000). A cursor this server did not make, or one
    /// beyond everything it has stored (from another server or database), is refused.
    public func sync(callerID: String, after: String?, limit: Int?,
                     completion: @escaping @Sendable (Result<SyncPage, ServiceError>) -> Void) {
        guard let position = StreamCursor.decode(after ?? StreamCursor.start) else {
            return completion(.failure(.invalidInput("after must be a cursor this server gave")))
        }
        let limit = min(max(limit ?? Self.defaultSyncLimit, 1), Self.maxSyncLimit)
        store.stream(of: callerID, after: position, limit: limit + 1) { result in
            completion(result.mapError(ServiceError.init).flatMap { page in
                guard position <= page.head else {
                    return .failure(.invalidInput("after is ahead of every message stored here: a cursor from another server?"))
                }
                let merged = Self.merge(page.messages, page.receipts)
                let events = Array(merged.prefix(limit))
                return .success(SyncPage(events: events, next: StreamCursor.encode(events.last?.position ?? position), more: merged.count > limit))
            })
        }
    }

    /// Messages and receipts, each in stream order, as one run in stream order.
    static func merge(_ messages: [ChatMessage], _ receipts: [ReceiptState]) -> [StreamEvent] {
        var events: [StreamEvent] = []
        events.reserveCapacity(messages.count + receipts.count)
        var receiptIndex = 0
        for message in messages {
            while receiptIndex < receipts.count, receipts[receiptIndex].position < message.seq ?? 0 {
                events.append(.receipt(receipts[receiptIndex]))
                receiptIndex += 1
            }
            events.append(.message(message))
        }
        events.append(contentsOf: receipts[receiptIndex...].map(StreamEvent.receipt))
        return events
    }

    /// JavaScript's `parseInt(text, 10)`: optional leading whitespace and sign, then the
    /// longest run of digits; nil where it gives NaN. Saturates instead of overflowing.
    public static func parseIntLikeJavaScript(_ text: String?) -> Int? {
        guard let text else { return nil }
        var scalars = Substring(text).unicodeScalars.drop(while: { $0.properties.isWhitespace })
        var negative = false
        if let sign = scalars.first, sign == "-" || sign == "+" {
            negative = sign == "-"
            scalars = scalars.dropFirst()
        }
        var value = 0
        var digits = 0
        for scalar in scalars {
            guard let digit = scalar.properties.numericType == .decimal && scalar.isASCII ? Int(scalar.value) - 48 : nil else { break }
            let (product, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = product.addingReportingOverflow(digit)
            value = overflow1 || overflow2 ? Int.max : sum
            digits += 1
        }
        guard digits > 0 else { return nil }
        return negative ? -value : value
    }
}
