// DotEnv: the `.env` reader, a module of its own so the fuzzer (Fuzz/) can link it without
// the executable.
//
// May import: HTTPServer (its `trimmingSpaces`).
import HTTPServer

/// Reads `.env` files the way the `dotenv` npm package does for the lines people write:
/// `KEY=value`, `export KEY=value`, `#` comments (whole-line, or after an unquoted value
/// following a space), single quotes taken literally, double quotes with `\n` escapes,
/// backticks, and quoted values spanning lines.
public enum DotEnv {
    public static func parse(_ text: String) -> [(key: String, value: String)] {
        var result: [(key: String, value: String)] = []
        let lines = text.replacingCRLF().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var index = 0
        while index < lines.count {
            var line = lines[index].trimmingSpaces()
            index += 1
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = line.dropFirst(7).trimmingSpaces() }
            guard let equals = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else { continue }
            let key = line[..<equals].trimmingSpaces()
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" }) else { continue }
            let rest = line[line.index(after: equals)...].trimmingSpaces()
            if let quote = rest.first, quote == "\"" || quote == "'" || quote == "`" {
                // A quoted value may continue over the following lines until its closing quote.
                var body = String(rest.dropFirst())
                while !body.containsUnescapedQuote(quote), index < lines.count {
                    body += "\n" + lines[index]
                    index += 1
                }
                if let close = body.lastUnescapedQuote(quote) {
                    var value = String(body[..<close])
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
        var previous: Character = "x"
        for index in indices {
            if self[index] == "#" && (previous == " " || previous == "\t") { return String(self[..<index]) }
            previous = self[index]
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

    func containsUnescapedQuote(_ quote: Character) -> Bool { lastUnescapedQuote(quote) != nil }

    func lastUnescapedQuote(_ quote: Character) -> String.Index? {
        var found: String.Index?
        var escaped = false
        for index in indices {
            let c = self[index]
            if escaped { escaped = false; continue }
            if c == "\\" && quote == "\"" { escaped = true; continue }
            if c == quote { found = index }
        }
        return found
    }

    func expandingDoubleQuoteEscapes() -> String {
        var out = ""
        var escaped = false
        for c in self {
            if escaped {
                switch c {
                case "n": out.append("\n")
                case "r": out.append("\r")
                case "t": out.append("\t")
                case "\"": out.append("\"")
                case "\\": out.append("\\")
                default: out.append("\\"); out.append(c)
                }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        if escaped { out.append("\\") }
        return out
    }
}
