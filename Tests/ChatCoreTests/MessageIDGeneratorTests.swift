import ChatCore
import XCTest

final class MessageIDGeneratorTests: XCTestCase {
    func testVersion7LayoutAndOrderWithinAndAcrossMilliseconds() {
        var generator = MessageIDGenerator()
        var previous = ""
        var ids: [String] = []
        // 5,000 ids in one millisecond overflow the 12-bit counter into the next millisecond;
        // then the clock steps back; every id must still be greater than the one before.
        for step in 0..<6000 {
            let now: UInt64 = step < 5000 ? 1_764_000_000_000 : 1_763_999_999_000
            let id = generator.next(nowMilliseconds: now)
            XCTAssertEqual(id.count, 36)
            XCTAssertEqual(Validation.uuid(id), id)
            let bytes = Array(id.utf8)
            XCTAssertEqual(bytes[14], UInt8(ascii: "7"), "version nibble: \(id)")
            XCTAssertTrue("89ab".utf8.contains(bytes[19]), "variant: \(id)")
            XCTAssertGreaterThan(id, previous)
            previous = id
            ids.append(id)
        }
        XCTAssertEqual(Set(ids).count, ids.count)
        XCTAssertTrue(ids[0].hasPrefix("019ab697-e800-7"), "48-bit milliseconds first: \(ids[0])")  // 1_764_000_000_000 = 0x019AB697E800
    }

    func testRandomBitsComeFromTheBufferAndRefillWhenUsedUp() {
        final class Counter: @unchecked Sendable { var refills = 0 }
        let counter = Counter()
        var generator = MessageIDGenerator { buffer in
            counter.refills += 1
            for index in buffer.indices { buffer[index] = UInt8(truncatingIfNeeded: index &* 31 &+ counter.refills) }
        }
        for millisecond in 0..<1000 { _ = generator.next(nowMilliseconds: 1_764_000_000_000 + UInt64(millisecond)) }
        XCTAssertEqual(counter.refills, 3, "10 bytes per id from 4,096-byte blocks")
    }
}
