// ChatCore: the chat's logic, with no I/O of its own. Models, the input rules (validation),
// the account and history services, bcrypt, message ids, the `ChatStore` protocol every
// storage implements, and the group-commit `MessageWriter` over it. Unit-tested against the
// in-memory store in Tests/ChatTestSupport; the PostgreSQL store lives in ChatServer.
//
// May import: ServerRuntime (work queue, clock, log), JWT, JSON, CLinux (libxcrypt).
