import WebSocket

extension HTTPResponse {
    /// The answer to a WebSocket upgrade request (RFC 6455 §4.2): 101 Switching Protocols,
    /// after which `takeover` gets the socket and any bytes read past the request, or the
    /// refusal (426 for another version, 400 otherwise) when the request is no valid upgrade.
    public static func webSocketUpgrade(_ request: HTTPRequest, takeover: @escaping @Sendable (_ fd: Int32, _ leftover: [UInt8]) -> Void) -> HTTPResponse {
        switch WebSocketHandshake.validate(method: request.method, minorVersion: request.minorVersion, header: request.combinedHeader) {
        case .failure(let refusal):
            return .error(refusal.status, refusal.message, headers: refusal.headers.map { ($0.key, $0.value) })
        case .success(let accept):
            var response = HTTPResponse(status: 101, headers: [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)])
            response.takeover = takeover
            return response
        }
    }
}
