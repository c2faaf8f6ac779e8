import Base64
import JSON
import JWT
import XCTest

/// Vectors made by the `jsonwebtoken` npm package (9.0) with secret "supersecretkey";
/// the first is the token in the Node original's socket_sp.js.
final class JWTTests: XCTestCase {
    let signer = JWTSigner(secret: "supersecretkey")
    let userID = "9170fa4d-33e3-49db-a16f-d9c8062cdc78"
    let issuedAt: Int64 = 1_768_582_298
    let nodeToken = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6IjkxNzBmYTRkLTMzZTMtNDlkYi1hMTZmLWQ5YzgwNjJjZGM3OCIsImlhdCI6MTc2ODU4MjI5OCwiZXhwIjoxNzY4NTg1ODk4fQ.hFo7ofztDwTXAOX_EpyaJD8_lMENPlykcN_KVs373do"

    func testSigningMatchesJsonwebtokenByteForByte() {
        XCTAssertEqual(signer.sign(userID: userID, issuedAt: issuedAt), nodeToken)
    }

    func testVerifiesATokenMadeByJsonwebtoken() throws {
        let claims = try signer.verify(nodeToken, now: issuedAt + 10)
        XCTAssertEqual(claims, JWTClaims(userID: userID, issuedAt: issuedAt, expiresAt: issuedAt + 3600))
    }

    func testUnicodeSecretMatchesJsonwebtoken() throws {
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6IjkxNzBmYTRkLTMzZTMtNDlkYi1hMTZmLWQ5YzgwNjJjZGM3OCIsImlhdCI6MTc2ODU4MjI5OCwiZXhwIjoxNzY4NTg1ODk4fQ.GwL33N-vC5SkE64xvBLzSOVM6bZHuUnqqIY37Nm_lR8"
        XCTAssertEqual(JWTSigner(secret: "sécret✓").sign(userID: userID, issuedAt: issuedAt), token)
        XCTAssertNoThrow(try JWTSigner(secret: "sécret✓").verify(token, now: issuedAt))
    }

    func testExpiresExactlyAtExpWithNoClockTolerance() {
        XCTAssertNoThrow(try signer.verify(nodeToken, now: issuedAt + 3599))
        XCTAssertThrowsError(try signer.verify(nodeToken, now: issuedAt + 3600)) { XCTAssertEqual($0 as? JWTError, .expired) }
    }

    func testRefusesAlgNone() {
        let header = Base64.encodeURL(Array(#"{"alg":"none","typ":"JWT"}"#.utf8))
        let payload = Base64.encodeURL(Array(#"{"id":"9170fa4d-33e3-49db-a16f-d9c8062cdc78","exp":99999999999}"#.utf8))
        for token in ["\(header).\(payload).", "\(header).\(payload)"] {
            XCTAssertThrowsError(try signer.verify(token, now: issuedAt))
        }
        XCTAssertThrowsError(try signer.verify("\(header).\(payload).", now: issuedAt)) {
            XCTAssertEqual($0 as? JWTError, .unsupportedAlgorithm("none"))
        }
    }

    func testRefusesHS512EvenWithTheRightSecret() {
        let hs512 = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJpZCI6IjkxNzBmYTRkLTMzZTMtNDlkYi1hMTZmLWQ5YzgwNjJjZGM3OCIsImlhdCI6MTc2ODU4MjI5OCwiZXhwIjoxNzY4NTg1ODk4fQ.FSoa7v8UFg71cdniGYpkgAlZV4e2gA1qnsI0pYjkoE79G1QLckNprv8zmWOEiiV6fQDaF2KGAk31K8l9Y07kDQ"
        XCTAssertThrowsError(try signer.verify(hs512, now: issuedAt)) { XCTAssertEqual($0 as? JWTError, .unsupportedAlgorithm("HS512")) }
    }

    func testRefusesATokenWithoutExpiry() {
        let noExp = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6IjkxNzBmYTRkLTMzZTMtNDlkYi1hMTZmLWQ5YzgwNjJjZGM3OCIsImlhdCI6MTc2ODU4MjI5OH0.g-EdeVTh2g6cRqWemxCXob1WuI57r9PHBLWcIoqEH-s"
        XCTAssertThrowsError(try signer.verify(noExp, now: issuedAt)) { XCTAssertEqual($0 as? JWTError, .missingExpiry) }
    }

    func testRefusesATamperedPayload() {
        let parts = nodeToken.split(separator: ".").map(String.init)
        let forged = Base64.encodeURL(Array(#"{"id":"00000000-0000-0000-0000-000000000000","iat":1768582298,"exp":1768585898}"#.utf8))
        XCTAssertThrowsError(try signer.verify("\(parts[0]).\(forged).\(parts[2])", now: issuedAt)) {
            XCTAssertEqual($0 as? JWTError, .badSignature)
        }
    }

    func testRefusesAnotherSecret() {
        XCTAssertThrowsError(try JWTSigner(secret: "supersecretkey2").verify(nodeToken, now: issuedAt)) {
            XCTAssertEqual($0 as? JWTError, .badSignature)
        }
    }

    func testRefusesATruncatedSignature() {
        XCTAssertThrowsError(try signer.verify(String(nodeToken.dropLast(2)), now: issuedAt))
        XCTAssertThrowsError(try signer.verify(String(nodeToken.dropLast(1)), now: issuedAt))
    }

    func testRefusesMalformedTokens() {
        let garbage = ["", ".", "..", "a.b", "a.b.c.d", "!!!.@@@.###", "eyJhbGciOiJIUzI1NiJ9.e30.", String(repeating: "a", count: 10_000),
                       "\(nodeToken).", " \(nodeToken)", "bm90IGpzb24.bm90IGpzb24.c2ln"]
        for token in garbage {
            XCTAssertThrowsError(try signer.verify(token, now: issuedAt), "accepted \(token.prefix(40))")
        }
    }

    func testRefusesNonNumericOrFutureClaims() {
        let badExp = signer.sign(payload: ["id": .string(userID), "exp": "tomorrow"])
        XCTAssertThrowsError(try signer.verify(badExp, now: issuedAt)) { XCTAssertEqual($0 as? JWTError, .invalidClaim("exp is not a number")) }
        let notYet = signer.sign(payload: ["id": .string(userID), "exp": .number(Double(issuedAt + 100)), "nbf": .number(Double(issuedAt + 50))])
        XCTAssertThrowsError(try signer.verify(notYet, now: issuedAt)) { XCTAssertEqual($0 as? JWTError, .notYetValid) }
        let noID = signer.sign(payload: ["exp": .number(Double(issuedAt + 100))])
        XCTAssertThrowsError(try signer.verify(noID, now: issuedAt)) { XCTAssertEqual($0 as? JWTError, .invalidClaim("id is missing")) }
    }

    /// Found by the fuzzer (Fuzz/corpus/FuzzJWT/crash-exp-past-int64): an `exp` or `iat` past
    /// Int64, in a token signed with the secret, crashed the process converting it.
    func testRefusesTimesPastInt64() {
        for (exp, iat) in [(1.7e19, Double(issuedAt)), (9.3e18, Double(issuedAt)), (Double(issuedAt + 60), -1e19), (Double(issuedAt + 60), 1e300)] {
            let token = signer.sign(payload: ["id": .string(userID), "iat": .number(iat), "exp": .number(exp)])
            XCTAssertThrowsError(try signer.verify(token, now: issuedAt), "exp \(exp) iat \(iat)") {
                XCTAssertEqual($0 as? JWTError, .invalidClaim(exp > 1e18 ? "exp is out of range" : "iat is out of range"))
            }
        }
    }

    func testTheGenerationAndLoginTimeClaimsRoundTripAndAreZeroAndNilWithoutThem() throws {
        let token = signer.sign(userID: "u", issuedAt: issuedAt, lifetime: 60, generation: 7, authenticatedAt: issuedAt - 100)
        let claims = try signer.verify(token, now: issuedAt)
        XCTAssertEqual(claims, JWTClaims(userID: "u", issuedAt: issuedAt, expiresAt: issuedAt + 60, generation: 7, authenticatedAt: issuedAt - 100))
        let node = try signer.verify(signer.sign(userID: "u", issuedAt: issuedAt), now: issuedAt)
        XCTAssertEqual(node.generation, 0)
        XCTAssertNil(node.authenticatedAt)
        for (gen, auth) in [(JSONValue.number(-1), JSONValue.number(0)), (.number(1.5), .number(0)), (.string("1"), .number(0)), (.number(1e300), .number(0)),
                            (.number(0), .string("yesterday")), (.number(0), .number(1e300))] {
            let odd = signer.sign(payload: ["id": "u", "exp": .number(Double(issuedAt + 60)), "gen": gen, "auth_time": auth])
            XCTAssertThrowsError(try signer.verify(odd, now: issuedAt), "\(gen) \(auth)")
        }
    }
}
