import ChatCore
import XCTest

final class ValidationTests: XCTestCase {
    func testEmails() {
        XCTAssertEqual(try Validation.email("  Ann.O'Neil+chat@Example.co.uk \n").get(), "Ann.O'Neil+chat@Example.co.uk")
        XCTAssertEqual(try Validation.email("δοκιμή@παράδειγμα.δοκιμή").get(), "δοκιμή@παράδειγμα.δοκιμή")
        for bad in ["", "   ", "plain", "@x.com", "a@", "a@b", "a@@b.com", "a@b@c.com", "a@.com", "a@b.", "a@b..com", "a b@c.com",
                    "a@b.com\u{0}", "a\t@b.com", String(repeating: "a", count: 250) + "@b.com"] {
            XCTAssertThrowsError(try Validation.email(bad).get(), bad.debugDescription)
        }
        XCTAssertNoThrow(try Validation.email(String(repeating: "a", count: 248) + "@b.com").get(), "254 bytes is allowed")
    }

    func testUsernamesAreTrimmedForLengthAndStoredVerbatim() {
        XCTAssertEqual(try Validation.username("  Zoë 🚀 ").get(), "  Zoë 🚀 ")
        XCTAssertNoThrow(try Validation.username(String(repeating: "é", count: 64)).get())
        XCTAssertNoThrow(try Validation.username(String(repeating: "👩‍👩‍👧", count: 64)).get(), "characters, not bytes")
        XCTAssertThrowsError(try Validation.username(String(repeating: "x", count: 65)).get())
        XCTAssertThrowsError(try Validation.username(" \t ").get())
        XCTAssertThrowsError(try Validation.username("nul\u{0}byte").get())
    }

    func testNewPasswordsAreCountedInBytes() {
        XCTAssertNoThrow(try Validation.newPassword("12345678").get())
        XCTAssertThrowsError(try Validation.newPassword("1234567").get())
        XCTAssertNoThrow(try Validation.newPassword(String(repeating: "a", count: 72)).get())
        XCTAssertThrowsError(try Validation.newPassword(String(repeating: "a", count: 73)).get())
        XCTAssertThrowsError(try Validation.newPassword(String(repeating: "é", count: 37)).get(), "74 bytes")
        XCTAssertNoThrow(try Validation.newPassword(String(repeating: "é", count: 36)).get(), "72 bytes")
        XCTAssertThrowsError(try Validation.newPassword("abcd\u{0}efgh").get())
    }

    func testUUIDs() {
        XCTAssertEqual(Validation.uuid("6FC4098F-58E0-4B2F-8494-C932D968B32A"), "6fc4098f-58e0-4b2f-8494-c932d968b32a")
        for bad in ["", "6fc4098f58e04b2f8494c932d968b32a", "6fc4098f-58e0-4b2f-8494-c932d968b32", "6fc4098f-58e0-4b2f-8494-c932d968b32g",
                    "{6fc4098f-58e0-4b2f-8494-c932d968b32a}", "6fc4098f_58e0-4b2f-8494-c932d968b32a"] {
            XCTAssertNil(Validation.uuid(bad), bad)
        }
    }
}

final class BcryptTests: XCTestCase {
    func testVerifiesAHashMadeByTheNodeBcryptPackage() {
        // bcrypt 6.0 (npm): bcrypt.hashSync("hunter2-node", 10)
        let nodeHash = "$2b$10$9qj1kco3ePQqNPjfvupcvuHbLuC9nlQvJrKbMDrhm2ukK.CYOxXdG"
        XCTAssertTrue(Bcrypt.verify("hunter2-node", hash: nodeHash))
        XCTAssertFalse(Bcrypt.verify("hunter2-nodE", hash: nodeHash))
        XCTAssertFalse(Bcrypt.verify("", hash: nodeHash))
    }

    func testVerifiesTheClassic2aVector() {
        // From the crypt_blowfish test vectors.
        XCTAssertTrue(Bcrypt.verify("U*U", hash: "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"))
    }

    func testHashesAs2bAtTheGivenCostAndVerifies() throws {
        let hash = try Bcrypt.hash("correct horse", cost: 4)
        XCTAssertTrue(hash.hasPrefix("$2b$04$"))
        XCTAssertEqual(hash.utf8.count, 60)
        XCTAssertTrue(Bcrypt.verify("correct horse", hash: hash))
        XCTAssertFalse(Bcrypt.verify("correct horsf", hash: hash))
        XCTAssertNotEqual(try Bcrypt.hash("correct horse", cost: 4), hash, "salted")
    }

    func testForeignOrBrokenHashesNeverVerify() {
        for hash in ["", "plaintext", "$1$abc$def", "$2b$10$short", "$2b$99$" + String(repeating: "a", count: 53), "*0"] {
            XCTAssertFalse(Bcrypt.verify("anything", hash: hash), hash)
        }
        XCTAssertThrowsError(try Bcrypt.hash("x", cost: 3))
    }
}

final class TimestampsTests: XCTestCase {
    func testPostgresTextBecomesISOWithMillisecondsTruncated() {
        XCTAssertEqual(Timestamps.fromPostgres("2026-01-16 17:04:58.123987"), "2026-01-16T17:04:58.123Z")
        XCTAssertEqual(Timestamps.fromPostgres("2026-01-16 17:04:58.1"), "2026-01-16T17:04:58.100Z")
        XCTAssertEqual(Timestamps.fromPostgres("2026-01-16 17:04:58"), "2026-01-16T17:04:58.000Z")
        XCTAssertEqual(Timestamps.fromPostgres("2026-01-16 17:04:58.5+00"), "2026-01-16T17:04:58.500Z")
        XCTAssertEqual(Timestamps.fromPostgres("infinity"), "infinity")
    }

    func testFormatsEpochMicroseconds() {
        XCTAssertEqual(Timestamps.format(epochMicroseconds: 0), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(Timestamps.format(epochMicroseconds: 1_768_583_098_123_999), "2026-01-16T17:04:58.123Z")
        XCTAssertEqual(Timestamps.format(epochMicroseconds: 951_782_400_000_000), "2000-02-29T00:00:00.000Z")
        XCTAssertEqual(Timestamps.format(epochMicroseconds: -1), "1969-12-31T23:59:59.999Z")
    }
}

import PostgresClient

final class PostgresArrayLiteralTests: XCTestCase {
    func testArrayLiteralsQuoteAndEscapeEveryElement() {
        XCTAssertEqual(PostgresArrayLiteral.text([]), "{}")
        XCTAssertEqual(PostgresArrayLiteral.text(["a", "b c", "", "NULL"]), #"{"a","b c","","NULL"}"#)
        XCTAssertEqual(PostgresArrayLiteral.text([#"say "hi""#, #"back\slash"#, "{,}", "é😀", "\"", #"\"#, #"a\"b"#]),
                       #"{"say \"hi\"","back\\slash","{,}","é😀","\"","\\","a\\\"b"}"#)
    }
}

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
