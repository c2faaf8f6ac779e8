// JWT: HS256 JSON Web Tokens byte for byte as `jsonwebtoken` makes them, HMAC-SHA256 through
// OpenSSL, and the one constant-time comparison of secrets.
//
// May import: JSON, Base64, COpenSSL.

import Base64
import JSON

/// Why a token was refused. Callers map every case to one answer ("Invalid token"); the
/// cases exist for logs and tests.
public enum JWTError: Error, Sendable, Equatable {
    case malformed(String)
    case unsupportedAlgorithm(String)
    case badSignature
    case missingExpiry
    case expired
    case notYetValid
    case invalidClaim(String)
}

/// The claims this server issues and relies on: `{"id", "iat", "exp"}`, and in the tokens
/// this server issues also `gen` (the user's token generation: revoking a user's tokens moves
/// it on) and `auth_time` (when the user gave their password, RFC 9068 / OpenID Connect's
/// claim: a refresh keeps it). Tokens without them (the Node server's) are generation 0,
/// authenticated when they were issued.
public struct JWTClaims: Sendable, Equatable {
    public let userID: String
    public let issuedAt: Int64?
    public let expiresAt: Int64
    public let generation: Int64
    public let authenticatedAt: Int64?

    public init(userID: String, issuedAt: Int64?, expiresAt: Int64, generation: Int64 = 0, authenticatedAt: Int64? = nil) {
        self.userID = userID
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.generation = generation
        self.authenticatedAt = authenticatedAt
    }
}

/// HS256 JSON Web Tokens (RFC 7519 / RFC 7515 compact form), interchangeable with the
/// `jsonwebtoken` npm package: same header, same claim names, seconds since the epoch.
/// Verification is stricter than that package's: HS256 only, `exp` required, no clock skew.
public struct JWTSigner: Sendable {
    public static let defaultLifetime: Int64 = 3600
    public static let maxTokenBytes = 8192

    private let key: [UInt8]
    // Base64url of {"alg":"HS256","typ":"JWT"}, byte for byte what jsonwebtoken emits.
    private static let encodedHeader = Base64.encodeURL(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))

    public init(secret: String) {
        precondition(!secret.isEmpty, "a JWT secret must not be empty")
        key = Array(secret.utf8)
    }

    public func sign(userID: String, issuedAt: Int64, lifetime: Int64 = JWTSigner.defaultLifetime) -> String {
        let payload: JSONValue = ["id": .string(userID), "iat": .number(Double(issuedAt)), "exp": .number(Double(issuedAt + lifetime))]
        return sign(payload: payload)
    }

    /// A token of this server: the Node server's claims, then `gen` and `auth_time`.
    public func sign(userID: String, issuedAt: Int64, lifetime: Int64, generation: Int64, authenticatedAt: Int64) -> String {
        let payload: JSONValue = ["id": .string(userID), "iat": .number(Double(issuedAt)), "exp": .number(Double(issuedAt + lifetime)),
                                  "gen": .number(Double(generation)), "auth_time": .number(Double(authenticatedAt))]
        return sign(payload: payload)
    }

    /// Signs any payload; tests use it to make tokens the server must refuse.
    public func sign(payload: JSONValue, header: String? = nil) -> String {
        let encodedHeader = header.map { Base64.encodeURL(Array($0.utf8)) } ?? Self.encodedHeader
        let signingInput = encodedHeader + "." + Base64.encodeURL(JSONWriter.bytes(payload))
        let signature = HMACSHA256.authenticate(Array(signingInput.utf8), key: key)
        return signingInput + "." + Base64.encodeURL(signature)
    }

    /// HMAC-SHA256 of `message` with this signer's secret, for other values the server hands
    /// out and must recognise (the recovery session ids). Callers put a label of their own in
    /// the message, so no such value can pass for a token's signature.
    public func authenticationCode(_ message: [UInt8]) -> [UInt8] {
        HMACSHA256.authenticate(message, key: key)
    }

    public func verify(_ token: String, now: Int64) throws(JWTError) -> JWTClaims {
        let bytes = Array(token.utf8)
        guard bytes.count <= Self.maxTokenBytes else { throw .malformed("token too long") }
        let dots = bytes.indices.filter { bytes[$0] == UInt8(ascii: ".") }
        guard dots.count == 2 else { throw .malformed("a JWT has three parts") }
        let headerPart = bytes[..<dots[0]]
        let payloadPart = bytes[(dots[0] + 1)..<dots[1]]
        let signaturePart = bytes[(dots[1] + 1)...]

        guard let headerBytes = Base64.decodeURL(headerPart),
              let header = try? JSONParser.parse(headerBytes), case .object(let headerObject) = header
        else { throw .malformed("header is not base64url JSON") }
        guard let alg = headerObject["alg"]?.stringValue else { throw .malformed("header has no alg") }
        guard alg == "HS256" else { throw .unsupportedAlgorithm(alg) }

        guard let signature = Base64.decodeURL(signaturePart) else { throw .malformed("signature is not base64url") }
        let expected = HMACSHA256.authenticate(Array(bytes[..<dots[1]]), key: key)
        guard constantTimeEqual(signature, expected) else { throw .badSignature }

        guard let payloadBytes = Base64.decodeURL(payloadPart),
              let payload = try? JSONParser.parse(payloadBytes), case .object(let claims) = payload
        else { throw .malformed("payload is not base64url JSON") }

        guard let expValue = claims["exp"] else { throw .missingExpiry }
        guard let exp = expValue.numberValue else { throw .invalidClaim("exp is not a number") }
        guard Double(now) < exp else { throw .expired }
        // A number past Int64 (signed with the secret, never by this server) is refused, not a crash.
        guard let expiresAt = Int64(exactly: exp.rounded(.down)) else { throw .invalidClaim("exp is out of range") }
        if let nbfValue = claims["nbf"] {
            guard let nbf = nbfValue.numberValue else { throw .invalidClaim("nbf is not a number") }
            guard Double(now) >= nbf else { throw .notYetValid }
        }
        var issuedAt: Int64?
        if let iatValue = claims["iat"] {
            guard let iat = iatValue.numberValue else { throw .invalidClaim("iat is not a number") }
            guard let seconds = Int64(exactly: iat.rounded(.down)) else { throw .invalidClaim("iat is out of range") }
            issuedAt = seconds
        }
        guard let userID = claims["id"]?.stringValue, !userID.isEmpty else { throw .invalidClaim("id is missing") }
        var generation: Int64 = 0
        if let genValue = claims["gen"] {
            guard let gen = genValue.numberValue, gen == gen.rounded(), (0...Double(Int32.max)).contains(gen) else {
                throw .invalidClaim("gen is not a generation")
            }
            generation = Int64(gen)
        }
        var authenticatedAt: Int64?
        if let authValue = claims["auth_time"] {
            guard let auth = authValue.numberValue, auth.isFinite, abs(auth) < 1e15 else { throw .invalidClaim("auth_time is not a time") }
            authenticatedAt = Int64(auth.rounded(.down))
        }
        return JWTClaims(userID: userID, issuedAt: issuedAt, expiresAt: expiresAt, generation: generation,
                         authenticatedAt: authenticatedAt)
    }
}
