import Base64
import XCTest

final class Base64Tests: XCTestCase {
    /// RFC 4648 §10's vectors, in the standard alphabet with padding.
    private let vectors = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]

    func testStandardAlphabetWithPadding() {
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decode(Array(encoded.utf8)), Array(plain.utf8))
        }
        XCTAssertEqual(Base64.encode([0xFB, 0xFF]), "+/8=")
        for (bad, why) in [("Zg", "padding is required"), ("Zh==", "non-zero trailing bits"), ("-_8=", "URL alphabet"), ("Zg=a", "padding in the middle")] {
            XCTAssertNil(Base64.decode(Array(bad.utf8)), why)
        }
    }

    func testURLAlphabetWithoutPadding() {
        for (plain, padded) in vectors {
            let encoded = String(padded.prefix { $0 != "=" })
            XCTAssertEqual(Base64.encodeURL(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decodeURL(Array(encoded.utf8)), Array(plain.utf8))
        }
        XCTAssertEqual(Base64.encodeURL([0xFB, 0xFF]), "-_8")
        for (bad, why) in [("Zg==", "padding is refused"), ("Z", "impossible length"), ("Zh", "non-zero trailing bits"), ("Zm+v", "standard alphabet")] {
            XCTAssertNil(Base64.decodeURL(Array(bad.utf8)), why)
        }
    }
}
