import JSON
import JWT
import XCTest
@testable import ChatClient

final class ChatAPITests: XCTestCase {
    func testReadsTheUserIDFromATokenWithoutVerifyingIt() {
        let token = JWTSigner(secret: "any secret").sign(userID: "9170fa4d-33e3-49db-a16f-d9c8062cdc78", issuedAt: 1_768_582_298)
        XCTAssertEqual(ChatAPI.userID(fromToken: token), "9170fa4d-33e3-49db-a16f-d9c8062cdc78")
    }

    func testATokenThatIsNoJWTHasNoUserID() {
        let payloadWithoutID = JWTSigner(secret: "s").sign(payload: ["sub": "x", "exp": 1])
        for token in ["", "abc", "a.b", "a..c", "a.!!!.c", "a.b.c.d", payloadWithoutID] {
            XCTAssertNil(ChatAPI.userID(fromToken: token), token)
        }
    }
}
