// SocketIO: the Engine.IO v4 and Socket.IO v5 packet codecs, shared by the server and the
// client library: Engine.IO packets over WebSocket text and polling payloads (binary as
// base64), Socket.IO packets with namespaces, ack ids and binary attachment counts.
//
// May import: JSON, Base64.
