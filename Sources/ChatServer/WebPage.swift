import HTTPServer

/// The web chat at `/`: one page, its style sheet and script, compiled into the executable
/// (Package.swift, `embedInCode`). Served with a policy that lets the page load nothing but
/// itself and talk to nothing but this server.
enum WebPage {
    private static let securityHeaders: [(name: String, value: String)] = [
        ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
            + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        // Revalidated on each load, so a new server version is picked up at once.
        ("Cache-Control", "no-cache"),
    ]

    /// The file at `path` ("/", "/chat.css", "/chat.js"), or nil for any other path.
    static func file(at path: String) -> (contentType: String, body: [UInt8])? {
        switch path {
        case "/", "/index.html": ("text/html; charset=utf-8", PackageResources.index_html)
        case "/chat.css": ("text/css; charset=utf-8", PackageResources.chat_css)
        case "/chat.js": ("text/javascript; charset=utf-8", PackageResources.chat_js)
        default: nil
        }
    }

    /// The response for a GET or HEAD of one of the page's files.
    static func response(for path: String) -> HTTPResponse? {
        guard let file = file(at: path) else { return nil }
        return HTTPResponse(status: 200, headers: [("Content-Type", file.contentType)] + securityHeaders, body: file.body)
    }
}
