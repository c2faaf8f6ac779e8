// DotEnv: the `.env` reader, a module of its own so the fuzzer (Fuzz/) can link it without
// the executable.
//
// May import: HTTPServer (its `trimmingSpaces`).
import HTTPServer

/// Reads `.env` files the way the `dotenv` npm package does for the lines people write:
/// `KEY=value`, `export KEY=value`, `#` comments (whole-line, or after an unquoted value
/// following a space), single quotes taken literally, double quotes with `\n` escapes,
/// backticks, and quoted values spanning lines. Quotes, `=`, `#` and backslashes are found
/// among Unicode scalars, not characters: one followed by a combining mark still counts.
public enum DotEnv {
    public static func parse(_ text: String) -> [(key: String, value: String)] {
        var result: [(key: String, value: String)] = []
        let lines = text.replacingCRLF().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var index = 0
        while index < lines.count {
            var line = lines[index].trimmingSpaces()
            index += 1
            if line.isEmpty || line.unicodeScalars.first == "#" { continue }
            if line.unicodeScalars.starts(with: "export ".unicodeScalars) { line = String(line.unicodeScalars.dropFirst(7)).trimmingSpaces() }
            guard let equals = line.unicodeScalars.firstIndex(where: { $0 == "=" || $0 == ":" }) else { continue }
            let key = String(line.unicodeScalars[..<equals]).trimmingSpaces()
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" }) else { continue }
            let rest = String(line.unicodeScalars[line.unicodeScalars.index(after: equals)...]).trimmingSpaces()
            if let quote = rest.unicodeScalars.first, quote == "\"" || quote == "'" || quote == "`" {
                // A quoted value may continue over the following lines until its closing quote.
                var body = String(rest.unicodeScalars.dropFirst())
                while !body.containsUnescapedQuote(quote), index < lines.count {
                    body += "\n" + lines[index]
                    index += 1
                }
                if let close = body.lastUnescapedQuote(quote) {
                    var value = String(body.unicodeScalars[..<close])
                    if quote == "\"" { value = value.expandingDoubleQuoteEscapes() }
                    result.append((key, value))
                    continue
                }
                // Unterminated: the value is taken as an unquoted one, quote and all.
            }
            result.append((key, rest.removingInlineComment().trimmingSpaces()))
        }
        return result
    }
}

private extension String {
    /// Drops a ` #…` or tab-`#…` comment after an unquoted value.
    func removingInlineComment() -> String {
        var previous: Unicode.Scalar = "x"
        for index in unicodeScalars.indices {
            let scalar = unicodeScalars[index]
            if scalar == "#" && (previous == " " || previous == "\t") { return String(unicodeScalars[..<index]) }
            previous = scalar
        }
        return self
    }

    func replacingCRLF() -> String {
        var out = ""
        out.reserveCapacity(utf8.count)
        var previousCR = false
        for scalar in unicodeScalars {
            if previousCR && scalar != "\n" { out.unicodeScalars.append("\n") }
            previousCR = scalar == "\r"
            if !previousCR { out.unicodeScalars.append(scalar) }
        }
        if previousCR { out.unicodeScalars.append("\n") }
        return out
    }

    func containsUnescapedQuote(_ quote: Unicode.Scalar) -> Bool { lastUnescapedQuote(quote) != nil }

    func lastUnescapedQuote(_ quote: Unicode.Scalar) -> String.Index? {
        var found: String.Index?
        var escaped = false
        for index in unicodeScalars.indices {
            let c = unicodeScalars[index]
            if escaped { escaped = false; continue }
            if c == "\\" && quote == "\"" { escaped = true; continue }
            if c == quote { found = index }
        }
        return found
    }

    func expandingDoubleQuoteEscapes() -> String {
        var out = ""
        var escaped = false
        for c in unicodeScalars {
            if escaped {
                switch c {
                case "n": out.unicodeScalars.append("\n")
                case "r": out.unicodeScalars.append("\r")
                case "t": out.unicodeScalars.append("\t")
                case "\"": out.unicodeScalars.append("\"")
                case "\\": out.unicodeScalars.append("\\")
                default: out.unicodeScalars.append("\\"); out.unicodeScalars.append(c)
                }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.unicodeScalars.append(c)
            }
        }
        if escaped { out.unicodeScalars.append("\\") }
        return out
    }
}
