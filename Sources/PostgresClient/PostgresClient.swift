// PostgresClient: a thin wrapper over libpq. A blocking connection for start-up work
// (migrations), and `PostgresPool`: a few connections driven without blocking in pipeline
// mode by one thread, with parameterised and prepared statements, typed rows, SQLSTATE-aware
// errors and reconnection. Knows nothing of the chat: its SQL lives in ChatServer's store.
//
// May import: CLibPQ, ServerRuntime (the clock).
