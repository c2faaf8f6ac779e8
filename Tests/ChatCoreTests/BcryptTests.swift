import ChatCore
import XCTest

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
