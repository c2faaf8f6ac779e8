import JSON
import Logging

/// A response before it is framed. Content-Length, Connection and Date are added on writing.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// For 101 Switching Protocols: called on the loop, once the response is written, with the
    /// socket and any bytes already read past the request; the connection then forgets both.
    public var takeover: (@Sendable (Int32, [UInt8]) -> Void)?
    /// Who asked, once the handler knows (a verified token's user): for the request's log line.
    public var userID: String?
    /// The level of the request's log line: `info`, or `debug` for a transport's chatter (a
    /// polling client's every poll) that has its own connection lines.
    public var accessLogLevel = Logger.Level.info

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func json(_ status: Int, _ value: JSONValue, headers: [(name: String, value: String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json; charset=utf-8")] + headers, body: JSONWriter.bytes(value))
    }

    /// `{"error": message}`, the shape of every error this server adds.
    public static func error(_ status: Int, _ message: String, headers: [(name: String, value: String)] = []) -> HTTPResponse {
        json(status, ["error": .string(message)], headers: headers)
    }

    /// The bytes on the wire. `headOnly` for HEAD: same headers, no body.
    func serialized(keepAlive: Bool, headOnly: Bool = false, date: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160 + headers.count * 40 + (headOnly ? 0 : body.count))
        out.append(contentsOf: "HTTP/1.1 \(status) \(Self.reason(status))\r\n".utf8)
        for header in headers {
            out.append(contentsOf: header.name.utf8)
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: header.value.utf8)
            out.append(contentsOf: "\r\n".utf8)
        }
        if status != 204 && status != 304 && !(100..<200).contains(status) {
            out.append(contentsOf: "Content-Length: \(body.count)\r\n".utf8)
        }
        out.append(contentsOf: "Date: \(date)\r\n".utf8)
        if status == 101 {
            out.append(contentsOf: "\r\n".utf8)  // its own Connection: Upgrade is among the headers
            return out
        }
        out.append(contentsOf: (keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n").utf8)
        if !headOnly { out.append(contentsOf: body) }
        return out
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 426: return "Upgrade Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status \(status)"
        }
    }
}
