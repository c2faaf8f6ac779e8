// ChatClient: the client library and the terminal client. A blocking HTTP/1.1 client and its
// response parsing, Engine.IO over WebSocket or long-polling, a Socket.IO client on `/`, the
// REST API (login, registration, user lookup, history), and `ChatCommandLine`, which both
// chat-cli executables run. Threads and Foundation are fine here: no event loop of the server's.
//
// May import: JSON, Base64, WebSocket, SocketIO, and ServerRuntime for its monotonic clock.
// Nothing of the server's protocols or application.
