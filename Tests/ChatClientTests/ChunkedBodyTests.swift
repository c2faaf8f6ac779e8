import XCTest
@testable import ChatClient

final class ChunkedBodyTests: XCTestCase {
    private let encoded = Array("5\r\nhello\r\n1;name=value\r\n \r\nA\r\n0123456789\r\n0\r\n\r\nNEXT".utf8)

    func testDecodesChunksWithExtensionsAndSaysWhatItTook() throws {
        let (body, consumed) = try XCTUnwrap(ChunkedBody.decode(encoded))
        XCTAssertEqual(String(decoding: body, as: UTF8.self), "hello 0123456789")
        XCTAssertEqual(Array(encoded[consumed...]), Array("NEXT".utf8), "what follows belongs to the next response")
    }

    func testWaitsForMoreAtEveryLength() throws {
        let whole = encoded.count - 4
        for length in 0..<whole {
            XCTAssertNil(try ChunkedBody.decode(Array(encoded[..<length])), "\(length) bytes")
        }
        XCTAssertNotNil(try ChunkedBody.decode(Array(encoded[..<whole])))
    }

    func testRefusesMalformedChunks() {
        for text in ["zz\r\nhello\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n", "-1\r\n\r\n", "0\r\nTrailer: x\r\n\r\n"] {
            XCTAssertThrowsError(try ChunkedBody.decode(Array(text.utf8)), text)
        }
    }
}
