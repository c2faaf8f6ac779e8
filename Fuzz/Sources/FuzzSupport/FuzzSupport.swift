// FuzzSupport: what the libFuzzer targets under Fuzz/ share (scripts/fuzz.sh builds and runs
// them; docs/fuzzing.md says what each checks). A broken invariant stops the process with a
// message, which libFuzzer reports as a crash and saves the input of; and inputs are cut
// into pieces the same way on every run, so an incremental decoder can be fed as a socket
// might deliver its bytes.
//
// May import: nothing (the standard library only).

#if canImport(Glibc)
import Glibc
#endif

/// Stops the process, naming the invariant, when `condition` is false.
@inline(__always)
public func require(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fail(message(), file: file, line: line) }
}

public func fail(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    let text = "FUZZ INVARIANT BROKEN at \(file):\(line): \(message)\n"
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    abort()
}

/// The input as an array (what most decoders take).
public func inputBytes(_ start: UnsafeRawPointer?, _ count: Int) -> [UInt8] {
    guard let start, count > 0 else { return [] }
    return Array(UnsafeRawBufferPointer(start: start, count: count))
}

/// A small deterministic generator (splitmix64), seeded from the input so that a saved input
/// replays exactly.
public struct SplitMix: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public init(seeding bytes: [UInt8]) {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        state = hash
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Ways to cut `count` bytes into consecutive non-empty pieces.
public enum Split {
    /// All at once (nothing at all for an empty input).
    public static func whole(_ count: Int) -> [Range<Int>] { count == 0 ? [] : [0..<count] }

    /// One byte at a time.
    public static func bytes(_ count: Int) -> [Range<Int>] { (0..<count).map { $0..<($0 + 1) } }

    /// Pieces of 1 to `maxPiece` bytes, lengths drawn from `generator`.
    public static func random(_ count: Int, maxPiece: Int = 16, using generator: inout SplitMix) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var start = 0
        while start < count {
            let length = Int.random(in: 1...maxPiece, using: &generator)
            let end = min(count, start + length)
            pieces.append(start..<end)
            start = end
        }
        return pieces
    }
}
