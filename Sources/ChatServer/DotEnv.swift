/// Reads `.env` files the way the `dotenv` npm package does for the lines people write:
/// `KEY=value`, `export KEY=value`, `#` comments (whole-line, or after an unquoted value
/// following a space), single quotes taken literally, double quotes with `\n` escapes,
/// backticks, and quoted values spanning lines.
enum DotEnv {
    struct Failure: Error, Equatable {
        let line: Int
        let reason: String
    }

    static func parse(_ text: String) -> [(key: String, value: String)] {
        var result: [(key: String, value: String)] = []
        let lines = text.replacingCRLF().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var index = 0
        while index < lines.count {
            var line = trimmed(lines[index])
            index += 1
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = trimmed(String(line.dropFirst(7))) }
            guard let equals = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else { continue }
            let key = trimmed(String(line[..<equals]))
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" }) else { continue }
            var rest = trimmed(String(line[line.index(after: equals)...]))
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
                rest = String(rest)  // unterminated: taken as an unquoted value
            }
            rest = rest.removingInlineComment()
            result.append((key, trimmed(rest)))
        }
        return result
    }

    static func trimmed(_ text: String) -> String {
        var scalars = Substring(text).unicodeScalars
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        return String(scalars)
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
