// The incremental UTF-8 validator (Sources/WebSocket/UTF8Validator.swift) against the
// standard library. Invariants:
// - valid and complete exactly when `String(validating:)` accepts the bytes, through each of
//   its three entry points (array, raw buffer, any sequence), whole, byte by byte and in
//   random pieces;
// - it refuses at the very byte that makes the input impossible to complete into valid UTF-8
//   (the end of the standard library's first maximal ill-formed subpart), not before, not
//   after; a truncated last character is "incomplete", never refused.
import FuzzSupport
import WebSocket

/// Where the bytes become invalid: the index of the first byte no valid text could have
/// there, or nil when every byte could still be part of valid text (the input is valid, or
/// valid but cut inside its last character).
func firstImpossibleByte(_ bytes: [UInt8]) -> Int? {
    var iterator = bytes.makeIterator()
    var parser = Unicode.UTF8.ForwardParser()
    var offset = 0
    while true {
        switch parser.parseScalar(from: &iterator) {
        case .valid(let scalar):
            offset += scalar.count
        case .emptyInput:
            return nil
        case .error(let length):
            // A maximal subpart: `length` bytes that start a character, then a byte that cannot
            // continue it — or a lone byte that can start nothing.
            let lead = bytes[offset]
            let canStart = (0xC2...0xF4).contains(lead)
            if !canStart { return offset }
            return offset + length < bytes.count ? offset + length : nil
        }
    }
}

enum Entry: CaseIterable { case array, raw, sequence }

/// Feeds the pieces; returns the index of the byte at which the validator refused (the end of
/// the piece it refused in, then narrowed by feeding that piece byte by byte), or nil, and
/// whether it says complete.
func run(_ input: [UInt8], pieces: [Range<Int>], entry: Entry) -> (refusedIn: Range<Int>?, complete: Bool) {
    var validator = UTF8Validator()
    for piece in pieces {
        let ok: Bool
        switch entry {
        case .array: ok = validator.feed(Array(input[piece]))
        case .raw: ok = input.withUnsafeBytes { validator.feed(raw: UnsafeRawBufferPointer(rebasing: $0[piece])) }
        case .sequence: ok = validator.feed(input[piece])  // an ArraySlice: the generic overload
        }
        if !ok { return (piece, false) }
    }
    return (nil, validator.isComplete)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = inputBytes(start, count)
    let valid = String(validating: input, as: UTF8.self) != nil
    let impossible = firstImpossibleByte(input)
    require(valid == (impossible == nil && String(decoding: input, as: UTF8.self).utf8.elementsEqual(input)),
            "the oracle disagrees with itself")
    var generator = SplitMix(seeding: input)
    for entry in Entry.allCases {
        let whole = run(input, pieces: Split.whole(input.count), entry: entry)
        require((whole.refusedIn == nil && whole.complete) == valid, "\(entry) whole: valid \(valid), validator \(whole)")
        require((whole.refusedIn == nil) == (impossible == nil), "\(entry) whole: refused \(whole), first impossible byte \(String(describing: impossible))")

        // Byte by byte through the array entry would be the raw one again, with an array per byte.
        if entry != .array {
            let bytes = run(input, pieces: Split.bytes(input.count), entry: entry)
            require(bytes.refusedIn?.lowerBound == impossible, "\(entry) byte by byte refused at \(String(describing: bytes.refusedIn)), first impossible byte \(String(describing: impossible))")
            require(bytes.complete == whole.complete, "\(entry) byte by byte complete \(bytes.complete), whole \(whole.complete)")
        }

        let pieces = run(input, pieces: Split.random(input.count, maxPiece: 24, using: &generator), entry: entry)
        if let impossible {
            require(pieces.refusedIn?.contains(impossible) == true, "\(entry) in pieces refused in \(String(describing: pieces.refusedIn)), first impossible byte \(impossible)")
        } else {
            require(pieces.refusedIn == nil && pieces.complete == valid, "\(entry) in pieces \(pieces), valid \(valid)")
        }
    }
    return 0
}
