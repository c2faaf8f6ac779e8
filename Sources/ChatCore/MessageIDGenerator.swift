import CLinux

/// Message ids: RFC 9562 version 7 UUIDs — 48 bits of Unix milliseconds, then a 12-bit counter
/// within the millisecond, then 62 random bits. Ids from one generator only ever grow, so new
/// rows land at the right edge of the messages primary key instead of on a random page of it
/// (the README's Performance section has the measurement).
/// Random bits come from the kernel in blocks, not one system call per id.
/// Not thread-safe: one generator per lock or thread.
public struct MessageIDGenerator: Sendable {
    private var lastMilliseconds: UInt64 = 0
    private var counter: UInt16 = 0
    private var random: [UInt8]
    private var randomUsed: Int
    private let refill: @Sendable (inout [UInt8]) -> Void

    /// `refill` fills the buffer with random bytes; tests pass a fixed one.
    public init(refill: @escaping @Sendable (inout [UInt8]) -> Void = MessageIDGenerator.kernelRandom) {
        self.refill = refill
        random = [UInt8](repeating: 0, count: 4096)
        randomUsed = random.count
    }

    public static func kernelRandom(_ buffer: inout [UInt8]) {
        buffer.withUnsafeMutableBytes { raw in
            var filled = 0
            while filled < raw.count {
                let count = getrandom(raw.baseAddress! + filled, raw.count - filled, 0)
                if count > 0 { filled += count }
            }
        }
    }

    public static func wallClockMilliseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec) / 1_000_000
    }

    private mutating func randomBytes(_ count: Int) -> ArraySlice<UInt8> {
        if randomUsed + count > random.count {
            refill(&random)
            randomUsed = 0
        }
        defer { randomUsed += count }
        return random[randomUsed..<(randomUsed + count)]
    }

    /// The next id, greater than every id this generator made before, even if the clock steps back.
    public mutating func next(nowMilliseconds: UInt64 = wallClockMilliseconds()) -> String {
        let bytes = randomBytes(10)
        var first = bytes.startIndex
        if nowMilliseconds > lastMilliseconds {
            lastMilliseconds = nowMilliseconds
            // A random start with the top bit clear leaves at least 2,048 ids for this millisecond.
            counter = (UInt16(bytes[first]) << 4 | UInt16(bytes[first + 1] >> 4)) & 0x7FF
            first += 2
        } else if counter < 0xFFF {
            counter += 1
        } else {
            lastMilliseconds += 1  // 4,096 ids in one millisecond: borrow the next (RFC 9562 §6.2)
            counter = 0
        }
        let ms = lastMilliseconds
        // The 16 bytes on the stack, not in an array: this runs for every message, under the writer's lock.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { uuid in
            for shift in 0..<6 { uuid[shift] = UInt8(truncatingIfNeeded: ms >> UInt64(40 - 8 * shift)) }
            uuid[6] = 0x70 | UInt8(counter >> 8)
            uuid[7] = UInt8(truncatingIfNeeded: counter)
            uuid[8] = 0x80 | bytes[first] & 0x3F
            for index in 1..<8 { uuid[8 + index] = bytes[first + index] }
            return Self.format(UnsafeBufferPointer(uuid))
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// 16 bytes in the 8-4-4-4-12 lowercase form.
    static func format(_ uuid: UnsafeBufferPointer<UInt8>) -> String {
        String(unsafeUninitializedCapacity: 36) { out in
            var position = 0
            for index in 0..<16 {
                if index == 4 || index == 6 || index == 8 || index == 10 {
                    out[position] = UInt8(ascii: "-")
                    position += 1
                }
                out[position] = hexDigits[Int(uuid[index] >> 4)]
                out[position + 1] = hexDigits[Int(uuid[index] & 0x0F)]
                position += 2
            }
            return position
        }
    }
}
