// Base64: RFC 4648, the standard alphabet with padding and the URL alphabet without, on bytes.
//
// May import: nothing.

/// RFC 4648 base64: the standard alphabet with padding (WebSocket accept keys, Engine.IO's
/// binary-in-text `b…` packets) and the URL alphabet without (JWS).
public enum Base64 {
    private static let standardAlphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let urlAlphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    private static func table(_ alphabet: [UInt8]) -> [UInt8] {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }

    private static let standardTable = table(standardAlphabet)
    private static let urlTable = table(urlAlphabet)

    public static func encode(_ bytes: some Collection<UInt8>) -> String { encode(bytes, alphabet: standardAlphabet, pad: true) }
    public static func encodeURL(_ bytes: some Collection<UInt8>) -> String { encode(bytes, alphabet: urlAlphabet, pad: false) }

    /// Padded standard base64; nil for anything else.
    public static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        var body = Array(text)
        var padding = 0
        while padding < 2, body.last == UInt8(ascii: "=") { body.removeLast(); padding += 1 }
        return decode(body, table: standardTable)
    }

    /// Unpadded base64url; nil for padding, another alphabet, or an impossible length.
    public static func decodeURL(_ text: some Collection<UInt8>) -> [UInt8]? {
        decode(text, table: urlTable)
    }

    private static func encode(_ bytes: some Collection<UInt8>, alphabet: [UInt8], pad: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var iterator = bytes.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next()
            let b2 = iterator.next()
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | (b1 ?? 0) >> 4)])
            if let b1 {
                out.append(alphabet[Int((b1 & 0x0F) << 2 | (b2 ?? 0) >> 6)])
                if let b2 { out.append(alphabet[Int(b2 & 0x3F)]) } else if pad { out.append(UInt8(ascii: "=")) }
            } else if pad {
                out.append(contentsOf: [UInt8(ascii: "="), UInt8(ascii: "=")])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Non-zero trailing bits are refused, so each byte string has exactly one spelling.
    private static func decode(_ text: some Collection<UInt8>, table: [UInt8]) -> [UInt8]? {
        guard text.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for c in text {
            let value = table[Int(c)]
            guard value != 0xFF else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        guard accumulator & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return out
    }
}
