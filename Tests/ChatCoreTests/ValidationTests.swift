import ChatCore
import JSON
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
        // Stored verbatim and indexed: spaces around a short name, or one character with
        // thousands of combining marks, must not make an index entry PostgreSQL refuses.
        XCTAssertThrowsError(try Validation.username("ann" + String(repeating: " ", count: 2_000)).get())
        XCTAssertThrowsError(try Validation.username("a" + String(repeating: "\u{301}", count: 1_000)).get())
        XCTAssertNoThrow(try Validation.username(" ann" + String(repeating: " ", count: 1_000)).get())
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

    func testAClientIDIsAnOptionalUUID() throws {
        let to = "00000000-0000-4000-8000-000000000001"
        func clientID(_ value: JSONValue?) -> Result<String?, Validation.Failure> {
            var payload = JSONObject([("to", .string(to)), ("message", "hi")])
            if let value { payload["client_id"] = value }
            return Validation.outgoingMessage(.object(payload), maxBytes: 100).map(\.clientID)
        }
        XCTAssertEqual(try clientID(nil).get(), nil)
        XCTAssertEqual(try clientID(.null).get(), nil)
        XCTAssertEqual(try clientID("0193A2B4-C5D6-4E7F-8091-A2B3C4D5E6F7").get(), "0193a2b4-c5d6-4e7f-8091-a2b3c4d5e6f7")
        for bad: JSONValue in ["", "nope", "0193a2b4c5d64e7f8091a2b3c4d5e6f7", 42, true, ["x"], ["id": "0193a2b4-c5d6-4e7f-8091-a2b3c4d5e6f7"]] {
            guard case .failure(let failure) = clientID(bad) else { return XCTFail("\(bad) taken") }
            XCTAssertEqual(failure.message, "client_id must be a UUID")
        }
    }
}
