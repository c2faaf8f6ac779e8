import COpenSSL

enum HMACSHA256 {
    static let length = 32

    static func authenticate(_ message: [UInt8], key: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var outLength: UInt32 = 0
        let ok = key.withUnsafeBufferPointer { keyBuffer in
            message.withUnsafeBufferPointer { messageBuffer in
                out.withUnsafeMutableBufferPointer { outBuffer in
                    HMAC(EVP_sha256(), keyBuffer.baseAddress, Int32(keyBuffer.count),
                         messageBuffer.baseAddress, messageBuffer.count, outBuffer.baseAddress, &outLength)
                }
            }
        }
        precondition(ok != nil && outLength == UInt32(length), "OpenSSL HMAC-SHA256 failed")
        return Array(out.prefix(length))
    }
}
