// HS256 verification (Sources/JWT/JWT.swift), with a key of the fuzzer's own. Invariants:
// - the input as a token: verification never crashes, and accepts only a token that is its
//   own header and payload signed with the key, byte for byte (base64url has one spelling);
// - the input as edits (replace, insert, delete bytes) of a token signed with the key: any
//   change is refused, and the unchanged token accepted with its claims;
// - the input, when it is JSON, signed as a payload: verification never crashes, accepts only
//   an object with a future numeric `exp` and a non-empty string `id`, and returns them;
//   signed as a header: accepted exactly when its `alg` is "HS256".
import Base64
import FuzzSupport
import JSON
import JWT

let secret = "fuzzing-secret-not-a-real-one"
let signer = JWTSigner(secret: secret)
let now: Int64 = 1_768_582_298
let claims: JSONValue = ["id": "9170fa4d-33e3-49db-a16f-d9c8062cdc78", "iat": .number(Double(now)), "exp": .number(Double(now + 3600))]
let token = Array(signer.sign(payload: claims).utf8)

/// The verdict, with the signed-by-the-key check made independently of `verify`.
func verify(_ text: String) -> JWTClaims? {
    guard let claims = try? signer.verify(text, now: now) else { return nil }
    let bytes = Array(text.utf8)
    guard let lastDot = bytes.lastIndex(of: UInt8(ascii: ".")) else { fail("accepted \(text.debugDescription) without a dot") }
    let signingInput = Array(bytes[..<lastDot])
    let expected = signingInput + Array(("." + Base64.encodeURL(signer.authenticationCode(signingInput))).utf8)
    require(expected == bytes, "accepted \(text.debugDescription), which is not its content signed with the key")
    require(!claims.userID.isEmpty, "accepted an empty id")
    require(claims.expiresAt >= now, "accepted a token expired at \(claims.expiresAt)")
    return claims
}

/// Edits of `token` read from the input, three bytes each: what (replace, insert, delete),
/// where, which byte.
func edited(_ input: [UInt8]) -> [UInt8] {
    var bytes = token
    var index = 0
    while index + 3 <= input.count {
        let position = Int(input[index + 1]) % (bytes.count + 1)
        switch input[index] % 3 {
        case 0 where position < bytes.count: bytes[position] = input[index + 2]
        case 1: bytes.insert(input[index + 2], at: position)
        case 2 where position < bytes.count: bytes.remove(at: position)
        default: break
        }
        index += 3
    }
    return bytes
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = inputBytes(start, count)
    let text = String(decoding: input, as: UTF8.self)
    _ = verify(text)

    let mutated = edited(input)
    let verdict = verify(String(decoding: mutated, as: UTF8.self))
    if mutated == token {
        require(verdict == JWTClaims(userID: "9170fa4d-33e3-49db-a16f-d9c8062cdc78", issuedAt: now, expiresAt: now + 3600), "the token itself gives \(String(describing: verdict))")
    } else {
        require(verdict == nil, "accepted the changed token \(String(decoding: mutated, as: UTF8.self).debugDescription)")
    }

    if let json = try? JSONParser.parse(input) {
        let signed = signer.sign(payload: json)
        if let accepted = verify(signed) {
            require(json["id"]?.stringValue == accepted.userID, "id \(accepted.userID) from \(json)")
            require(json["exp"]?.numberValue.map { Double(now) < $0 } == true, "exp from \(json)")
            require(json["exp"]?.numberValue.map { Int64($0.rounded(.down)) } == accepted.expiresAt, "exp \(accepted.expiresAt) from \(json)")
            require(json["iat"]?.numberValue.map { Int64($0.rounded(.down)) } == accepted.issuedAt, "iat \(String(describing: accepted.issuedAt)) from \(json)")
        }
        if json.objectValue != nil {
            let accepted = verify(signer.sign(payload: claims, header: text)) != nil
            let fitting = signer.sign(payload: claims, header: text).utf8.count <= JWTSigner.maxTokenBytes
            require(accepted == (fitting && json["alg"]?.stringValue == "HS256"), "header \(text.debugDescription) accepted: \(accepted)")
        }
    }
    return 0
}
