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
    /// `before` and `after` are ids of messages of this conversation (exclusive bounds, so a
    /// client pages with the id at the end of its last page); `order` is `asc` (oldest first,
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
            guard let id = Validation.uuid(value) else {
                return completion(.failure(.invalidInput("\(name) must be the id (a UUID) of a message in this conversation")))
            }
            if name == "before" { page.beforeID = id } else { page.afterID = id }
        }
        store.history(between: callerID, and: other, page: page) { result in
            completion(result.mapError(ServiceError.init))
        }
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
