// HTTPServer: HTTP/1.1 on the runtime's event loops. The incremental request parser, requests
// and responses (with the per-loop `Date` cache), the connection that enforces every limit
// and time-out, the listener that puts a connection acceptor on each loop, and, after a 101
// answer, the WebSocket connection transport (RFC 6455 frames in and out on the same loop).
//
// May import: ServerRuntime, and the codecs WebSocket and JSON. Nothing about Engine.IO,
// Socket.IO or the chat.
