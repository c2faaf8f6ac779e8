/// Conversation history, independent of HTTP.
public final class MessageService: Sendable {
    public static let defaultLimit = 20
    public static let maxLimit = 100

    private let store: any ChatStore

    public init(store: any ChatStore) {
        self.store = store
    }

    /// Messages between `callerID` and `otherID`, oldest first. `limit` and `offset` are the raw
    /// query values, read like the Node server did (`parseInt(x) || default`), then clamped:
    /// limit to 1…100, offset to ≥ 0.
    public func history(callerID: String, otherID: String, limit: String?, offset: String?,
                        completion: @escaping @Sendable (Result<[ChatMessage], ServiceError>) -> Void) {
        guard let other = Validation.uuid(otherID) else {
            return completion(.failure(.invalidInput("userId must be a UUID")))
        }
        let limit = min(max(Self.parseIntLikeJavaScript(limit).flatMap { $0 == 0 ? nil : $0 } ?? Self.defaultLimit, 1), Self.maxLimit)
        let offset = max(Self.parseIntLikeJavaScript(offset) ?? 0, 0)
        store.history(between: callerID, and: other, limit: limit, offset: offset) { result in
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
