import HTTPServer
import XCTest

final class OriginPolicyTests: XCTestCase {
    func testTheSettingIsAStarOrAListOfOrigins() throws {
        XCTAssertEqual(try OriginPolicy(setting: "*"), .any)
        XCTAssertEqual(try OriginPolicy(setting: " "), .any)
        XCTAssertEqual(try OriginPolicy(setting: "https://Chat.Example.com, http://localhost:5001 https://a.example:443/"),
                       .only(["https://chat.example.com", "http://localhost:5001", "https://a.example"]))
        for bad in ["chat.example.com", "ftp://x.example", "https://x.example/path", "https://user@x.example", "null", "https://", "*,https://x.example"] {
            XCTAssertThrowsError(try OriginPolicy(setting: bad), bad)
        }
    }

    func testOnlyListedOriginsPassAndRequestsWithoutOneAlways() throws {
        let policy = try OriginPolicy(setting: "https://chat.example.com,http://localhost:5001")
        XCTAssertTrue(policy.allows(origin: nil), "not a page")
        XCTAssertTrue(policy.allows(origin: "https://chat.example.com"))
        XCTAssertTrue(policy.allows(origin: "HTTPS://CHAT.EXAMPLE.COM:443"))
        XCTAssertTrue(policy.allows(origin: "http://localhost:5001"))
        for refused in ["https://evil.example", "http://chat.example.com", "https://chat.example.com.evil.example", "null", "", "http://localhost:5002"] {
            XCTAssertFalse(policy.allows(origin: refused), refused)
        }
        XCTAssertTrue(OriginPolicy.any.allows(origin: "https://evil.example"))
    }
}
