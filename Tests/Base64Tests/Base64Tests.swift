import Base64
import XCTest

final class Base64Tests: XCTestCase {
    func testBase64URLVectorsFromRFC4648() {
        let vectors = [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encodeURL(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decodeURL(Array(encoded.utf8)), Array(plain.utf8))
        }
        XCTAssertEqual(Base64.encodeURL([0xFB, 0xFF]), "-_8")
        XCTAssertNil(Base64.decodeURL(Array("Zg==".utf8)), "padding is refused")
        XCTAssertNil(Base64.decodeURL(Array("Z".utf8)), "impossible length")
        XCTAssertNil(Base64.decodeURL(Array("Zh".utf8)), "non-zero trailing bits")
        XCTAssertNil(Base64.decodeURL(Array("Zm+v".utf8)), "standard alphabet")
    }

    func testStandardAlphabetWithPaddingFromRFC4648() {
        let vectors = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decode(Array(encoded.utf8)), Array(plain.utf8))
        }
        XCTAssertEqual(Base64.encode([0xFB, 0xFF]), "+/8=")
        XCTAssertNil(Base64.decode(Array("Zg".utf8)), "padding is required")
        XCTAssertNil(Base64.decode(Array("Zh==".utf8)), "non-zero trailing bits")
        XCTAssertNil(Base64.decode(Array("-_8=".utf8)), "URL alphabet")
        XCTAssertNil(Base64.decode(Array("Zg=a".utf8)), "padding in the middle")
    }
}
