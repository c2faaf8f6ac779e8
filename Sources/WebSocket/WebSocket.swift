// WebSocket: the RFC 6455 codec, with no I/O. The server's opening-handshake check and the
// client's handshake, an incremental frame decoder (masking, fragmentation, control frames,
// close codes, limits checked from the header), the frame encoder, and incremental UTF-8
// validation. The HTTP server's WebSocket connection and every client drive it.
//
// May import: Base64, COpenSSL (SHA-1 for the accept value).
