// The `.env` reader (Sources/DotEnv/DotEnv.swift). Invariants:
// - it never crashes, whatever the text;
// - every key it returns is non-empty and made of letters, digits, `_`, `.` and `-`;
// - what it read, written out again as `.env` lines (double-quoted with escapes; or single-
//   quoted, back-quoted or bare where the value allows), reads back as the same keys and
//   values, byte for byte;
// - CR LF line ends read as LF ones.
import DotEnv
import FuzzSupport

func isKey(_ key: String) -> Bool {
    !key.isEmpty && key.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" }
}

func doubleQuoted(_ value: String) -> String {
    var out = "\""
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\\": out += "\\\\"
        case "\"": out += "\\\""
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// The value written one of the ways that keep it, chosen by `choice`.
func written(_ value: String, choice: UInt64) -> String {
    // All by Unicode scalars, as the reader looks (a quote and a combining mark after it are one Character).
    let scalars = Array(value.unicodeScalars)
    let oneLine = !scalars.contains { $0 == "\n" || $0 == "\r" }
    let padded = scalars.first.map { $0 == " " || $0 == "\t" } == true || scalars.last.map { $0 == " " || $0 == "\t" } == true
    let startsQuoted = scalars.first.map { $0 == "\"" || $0 == "'" || $0 == "`" } == true
    let comment = zip(scalars, scalars.dropFirst()).contains { ($0 == " " || $0 == "\t") && $1 == "#" }
    switch choice % 4 {
    case 1 where oneLine:
        if !scalars.contains("'") { return "'" + value + "'" }
    case 2 where oneLine:
        if !scalars.contains("`") { return "`" + value + "`" }
    case 3 where oneLine && !padded && !startsQuoted && !comment:
        return value
    default:
        break
    }
    return doubleQuoted(value)
}

func same(_ a: [(key: String, value: String)], _ b: [(key: String, value: String)]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.key.utf8.elementsEqual($1.key.utf8) && $0.value.utf8.elementsEqual($1.value.utf8) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = inputBytes(start, count)
    let text = String(decoding: input, as: UTF8.self)
    let pairs = DotEnv.parse(text)
    for (key, _) in pairs { require(isKey(key), "key \(key.debugDescription)") }

    var generator = SplitMix(seeding: input)
    var lines: [String] = []
    for (key, value) in pairs {
        let prefix = generator.next() % 5 == 0 ? "export " : ""
        lines.append(prefix + key + "=" + written(value, choice: generator.next()))
    }
    let rewritten = lines.joined(separator: "\n") + "\n"
    let again = DotEnv.parse(rewritten)
    require(same(again, pairs), "\(pairs) written as \(rewritten.debugDescription) reads back as \(again)")

    let scalars = Array(text.unicodeScalars)
    let crs = scalars.indices.filter { scalars[$0] == "\r" }
    if !crs.isEmpty, crs.allSatisfy({ $0 + 1 < scalars.count && scalars[$0 + 1] == "\n" }) {
        // The same text with each CR LF pair made a LF (a lone CR is a line end of its own).
        var lf = ""
        for (index, scalar) in scalars.enumerated() where !(scalar == "\r" && index + 1 < scalars.count && scalars[index + 1] == "\n") {
            lf.unicodeScalars.append(scalar)
        }
        require(same(DotEnv.parse(lf), pairs), "CR LF line ends read differently from LF ones")
    }
    return 0
}
