import ChatCore
import PostgresClient
import ServerRuntime
import Logging

private let logger = Logger(label: "chat.database")

/// `ChatStore` on PostgreSQL through the non-blocking pool. Every statement is parameterised.
struct PostgresChatStore: ChatStore {
    let pool: PostgresPool
    /// Names this process in the spans it announces (`streamChannel`), so it knows its own.
    var processID = PostgresChatStore.makeProcessID()

    static func makeProcessID() -> String {
        var ids = MessageIDGenerator()
        return String(ids.next().suffix(12))  // the random end of a new UUID
    }

    private static let userColumns = "id::text AS id, email, username"

    func createUser(username: String, email: String, passwordHash: String,
                    completion: @escaping @Sendable (Result<User, StoreError>) -> Void) {
        let statement = PostgresStatement(
            "INSERT INTO users (username, email, password) VALUES ($1, $2, $3) RETURNING \(Self.userColumns)",
            [username, email, passwordHash])
        pool.submit(statement) { result in
            completion(Self.map(result, uniqueViolation: .duplicateEmail) { rows in
                guard let user = Self.user(rows, 0) else { return .failure(.failed("INSERT returned no row")) }
                return .success(user)
            })
        }
    }

    func credentials(forEmail email: String, completion: @escaping @Sendable (Result<UserCredentials?, StoreError>) -> Void) {
        let statement = PostgresStatement(
            "SELECT \(Self.userColumns), password, token_generation FROM users WHERE lower(email) = lower($1) ORDER BY (email = $1) DESC, id LIMIT 1",
            [email])
        pool.submit(statement) { result in
            completion(Self.map(result) { .success(Self.credentials($0)) })
        }
    }

    func credentials(ofUser userID: String, completion: @escaping @Sendable (Result<UserCredentials?, StoreError>) -> Void) {
        let statement = PostgresStatement("SELECT \(Self.userColumns), password, token_generation FROM users WHERE id = $1::uuid", [userID])
        pool.submit(statement) { result in
            completion(Self.map(result) { .success(Self.credentials($0)) })
        }
    }

    private static func credentials(_ rows: PostgresRows) -> UserCredentials? {
        guard let user = user(rows, 0), let hash = rows.value(0, "password") else { return nil }
        return UserCredentials(user: user, passwordHash: hash, tokenGeneration: rows.value(0, "token_generation").flatMap { Int64($0) } ?? 0)
    }

    func tokenGeneration(of userID: String, completion: @escaping @Sendable (Result<Int64?, StoreError>) -> Void) {
        let statement = PostgresStatement("SELECT token_generation FROM users WHERE id = $1::uuid", [userID], preparedName: "chat_token_generation")
        pool.submit(statement) { result in
            completion(Self.map(result) { .success($0.value(0, "token_generation").flatMap { Int64($0) }) })
        }
    }

    func revokeTokens(of userID: String, newPasswordHash: String?, completion: @escaping @Sendable (Result<Int64?, StoreError>) -> Void) {
        let statement = PostgresStatement(
            "UPDATE users SET token_generation = token_generation + 1, password = coalesce($2, password) WHERE id = $1::uuid RETURNING token_generation",
            [userID, newPasswordHash])
        pool.submit(statement) { result in
            completion(Self.map(result) { .success($0.value(0, "token_generation").flatMap { Int64($0) }) })
        }
    }

    func user(withEmail email: String, completion: @escaping @Sendable (Result<User?, StoreError>) -> Void) {
        let statement = PostgresStatement(
            "SELECT \(Self.userColumns) FROM users WHERE lower(email) = lower($1) ORDER BY (email = $1) DESC, id LIMIT 1",
            [email])
        pool.submit(statement) { result in
            completion(Self.map(result) { .success(Self.user($0, 0)) })
        }
    }

    /// The messages of the conversation of users $1 and $2, as `alias`. The least/greatest pair
    /// walks messages_conversation_idx in sequence order, both directions at once; the OR keeps
    /// exactly the two directions.
    private static func inConversation(_ alias: String) -> String {
        """
        least(\(alias).sender_id, \(alias).receiver_id) = least($1::uuid, $2::uuid)
          AND greatest(\(alias).sender_id, \(alias).receiver_id) = greatest($1::uuid, $2::uuid)
          AND ((\(alias).sender_id = $1::uuid AND \(alias).receiver_id = $2::uuid) OR (\(alias).sender_id = $2::uuid AND \(alias).receiver_id = $1::uuid))
        """
    }

    /// The columns a `ChatMessage` is read from (`message(_:_:)`), of `alias`.
    private static func messageColumns(_ alias: String) -> String {
        """
        \(alias).id::text AS id, \(alias).sender_id::text AS sender_id, \(alias).receiver_id::text AS receiver_id, \(alias).content,
        \(alias).created_at::text AS created_at, \(alias).seq::text AS seq, \(alias).client_id::text AS client_id
        """
    }

    /// Where `messageColumns`' columns are in a result, looked up once for all its rows.
    private struct MessageColumns {
        let id, senderID, receiverID, content, createdAt, seq, clientID: Int?

        init(_ rows: PostgresRows) {
            (id, senderID, receiverID, content) = (rows.columnIndex("id"), rows.columnIndex("sender_id"), rows.columnIndex("receiver_id"), rows.columnIndex("content"))
            (createdAt, seq, clientID) = (rows.columnIndex("created_at"), rows.columnIndex("seq"), rows.columnIndex("client_id"))
        }
    }

    private static func message(_ rows: PostgresRows, _ row: Int, _ columns: MessageColumns) -> ChatMessage {
        func value(_ column: Int?) -> String? { column.flatMap { rows.value(row, $0) } }
        return ChatMessage(id: value(columns.id) ?? "", senderID: value(columns.senderID), receiverID: value(columns.receiverID),
                           content: value(columns.content), createdAt: value(columns.createdAt).map(Timestamps.fromPostgres),
                           seq: columns.seq.flatMap { rows.int64(row, $0) }, clientID: value(columns.clientID))
    }

    func history(between userID: String, and otherID: String, page: HistoryPage,
                 completion: @escaping @Sendable (Result<[ChatMessage], StoreError>) -> Void) {
        // A bound by id is a message of this conversation: its sequence bounds the page
        // (exclusive), and one of another conversation is refused. A cursor bounds by itself.
        func id(_ bound: HistoryBound?) -> String? { if case .message(let id)? = bound { id } else { nil } }
        func seq(_ bound: HistoryBound?) -> String? { if case .position(let seq)? = bound { String(seq) } else { nil } }
        let pageSQL = PostgresStatement("""
            SELECT \(Self.messageColumns("m"))
            FROM messages m
            WHERE \(Self.inConversation("m"))
              AND ($5::uuid IS NULL OR m.seq < (SELECT b.seq FROM messages b WHERE b.id = $5::uuid AND \(Self.inConversation("b"))))
              AND ($6::uuid IS NULL OR m.seq > (SELECT a.seq FROM messages a WHERE a.id = $6::uuid AND \(Self.inConversation("a"))))
              AND ($7::bigint IS NULL OR m.seq < $7::bigint)
              AND ($8::bigint IS NULL OR m.seq > $8::bigint)
            ORDER BY m.seq \(page.newestFirst ? "DESC" : "ASC")
            LIMIT $3 OFFSET $4
            """, [userID, otherID, String(page.limit), String(page.offset), id(page.before), id(page.after), seq(page.before), seq(page.after)])
        var statements = [pageSQL]
        if id(page.before) != nil || id(page.after) != nil {
            // In the same round trip, before the page: do the bounds exist here?
            statements.insert(PostgresStatement("""
                SELECT ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM messages b WHERE b.id = $3::uuid AND \(Self.inConversation("b")))) AS before_found,
                       ($4::uuid IS NULL OR EXISTS (SELECT 1 FROM messages a WHERE a.id = $4::uuid AND \(Self.inConversation("a")))) AS after_found
                """, [userID, otherID, id(page.before), id(page.after)]), at: 0)
        }
        pool.submit(statements) { result in
            completion(Self.map(result) { results in
                if results.count == 2 {
                    for (column, name) in [("before_found", "before"), ("after_found", "after")] where results[0].value(0, column) != "t" {
                        return .failure(.invalidReference("\(name) must be the id of a message in this conversation"))
                    }
                }
                guard let rows = results.last else { return .failure(.failed("no result for the history page")) }
                let columns = MessageColumns(rows)
                return .success((0..<rows.count).map { Self.message(rows, $0, columns) })
            })
        }
    }

    func stream(of userID: String, after: Int64, limit: Int, completion: @escaping @Sendable (Result<StreamPage, StoreError>) -> Void) {
        // Two index ranges (messages_receiver_seq_idx, messages_sender_seq_idx), each cut at
        // `limit`, merged: never more than 2 × limit rows read, however long the stream. A
        // message to oneself is in both and taken once. The receipts of the user's
        // conversations since `after`, the latest of each: the user's range of the primary key,
        // filtered and sorted (receipt_seq is not indexed, see schema.sql). Messages and
        // receipts in one statement, so in one snapshot: read apart, a batch committed between
        // the two reads could show its receipt without its messages, and the cursor would pass
        // them. The head comes in the same round trip.
        let page = PostgresStatement("""
            SELECT 'm' AS kind, \(Self.messageColumns("s")),
                   NULL::text AS peer_id, NULL::text AS read_seq, NULL::text AS peer_read_seq, NULL::text AS receipt_seq
            FROM (SELECT * FROM (
                      (SELECT * FROM messages WHERE receiver_id = $1::uuid AND seq > $2::bigint ORDER BY seq LIMIT $3)
                      UNION ALL
                      (SELECT * FROM messages WHERE sender_id = $1::uuid AND receiver_id IS DISTINCT FROM $1::uuid AND seq > $2::bigint ORDER BY seq LIMIT $3)
                  ) both_sides ORDER BY seq LIMIT $3) s
            UNION ALL
            SELECT 'r', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                   r.peer_id::text, r.read_seq::text, r.peer_read_seq::text, r.receipt_seq::text
            FROM (SELECT peer_id, read_seq, peer_read_seq, receipt_seq FROM conversations
                  WHERE user_id = $1::uuid AND receipt_seq > $2::bigint ORDER BY receipt_seq LIMIT $3) r
            """, [userID, String(after), String(limit)], preparedName: "chat_stream_page")
        pool.submit([Self.headStatement, page]) { result in
            completion(Self.map(result) { results in
                guard results.count == 2, let head = results[0].value(0, "head").flatMap({ Int64($0) }) else {
                    return .failure(.failed("no result for the stream page"))
                }
                let rows = results[1]
                let columns = MessageColumns(rows)
                var messages: [ChatMessage] = [], receipts: [ReceiptState] = []
                for row in 0..<rows.count {
                    if rows.value(row, "kind") == "m" {
                        messages.append(Self.message(rows, row, columns))
                    } else if let peer = rows.value(row, "peer_id"), let position = rows.value(row, "receipt_seq").flatMap({ Int64($0) }) {
                        receipts.append(ReceiptState(peerID: peer, readSeq: rows.value(row, "read_seq").flatMap { Int64($0) } ?? 0,
                                                     peerReadSeq: rows.value(row, "peer_read_seq").flatMap { Int64($0) } ?? 0, position: position))
                    }
                }
                // Each part is in stream order already (UNION ALL keeps its parts' order only by
                // accident of the plan, so sort: at most 2 × limit rows).
                messages.sort { ($0.seq ?? 0) < ($1.seq ?? 0) }
                receipts.sort { $0.position < $1.position }
                return .success(StreamPage(messages: messages, receipts: receipts, head: head))
            })
        }
    }

    /// One transaction in one round trip: the stream head locked (writes take their places and
    /// commit one at a time, across processes), the messages, then the receipts (they see the
    /// messages and take later places), then the head moved to the last place taken and the
    /// span announced on `streamChannel` — so a process hears of a write exactly when it
    /// committed (NOTIFY is delivered at commit), and in commit order.
    func write(_ messages: [NewMessage], reads: [ReadRequest], completion: @escaping @Sendable (Result<StoreWrite, StoreError>) -> Void) {
        var statements = [Self.lockHeadStatement]
        if !messages.isEmpty { statements.append(Self.insertStatement(messages)) }
        if !reads.isEmpty { statements.append(Self.markReadStatement(reads)) }
        statements.append(PostgresStatement(Self.advanceHeadSQL, [processID], preparedName: "chat_stream_advance"))
        pool.submit(statements) { [statements] result in
            switch Self.map(result, { results -> Result<StoreWrite, StoreError> in
                guard results.count == statements.count, let advanced = results.last,
                      let after = advanced.value(0, "after").flatMap({ Int64($0) }),
                      let through = advanced.value(0, "through").flatMap({ Int64($0) }) else {
                    return .failure(.failed("no result for a write"))
                }
                guard let inserted = messages.isEmpty ? [] : Self.insertedMessages(ids: messages.map(\.id), rows: results[1]) else {
                    return .failure(.failed("the insert returned no id, created_at or seq"))
                }
                let marks: Result<[Result<ReadMark?, StoreError>], StoreError> = reads.isEmpty ? .success([]) : Self.readMarks(results[results.count - 2], count: reads.count)
                return marks.map { StoreWrite(messages: inserted, reads: $0, span: StreamSpan(after: after, through: through)) }
            }) {
            case .failure(let error): completion(.failure(error))
            case .success(let written):
                findRepeats(in: messages, inserted: written.messages) { result in
                    completion(result.map { StoreWrite(messages: $0, reads: written.reads, span: written.span) })
                }
            }
        }
    }

    /// The channel every write's span is announced on: `"<after> <through> <process id>"`.
    static let streamChannel = "chat_stream"

    private static let lockHeadStatement = PostgresStatement("SELECT last_seq FROM stream_head FOR UPDATE", preparedName: "chat_stream_lock")

    /// Moves the head to the last place taken — every place is taken under the head's lock, so
    /// the sequence's last value is this write's last place (or the head, when it took none) —
    /// and announces the span when it took any. `before` reads the row as the statement
    /// started: the write's start.
    private static let advanceHeadSQL = """
        WITH before AS (SELECT last_seq FROM stream_head),
        taken AS (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END AS last FROM messages_seq_seq),
        moved AS (
            UPDATE stream_head SET last_seq = (SELECT last FROM taken) WHERE (SELECT last FROM taken) > last_seq RETURNING last_seq
        )
        SELECT b.last_seq::text AS after, coalesce(m.last_seq, b.last_seq)::text AS through,
               CASE WHEN m.last_seq IS NOT NULL
                    THEN pg_notify('\(streamChannel)', b.last_seq::text || ' ' || m.last_seq::text || ' ' || $1::text) END::text AS announced
        FROM before b LEFT JOIN moved m ON true
        """

    /// Every user's messages and receipts in a span, in one statement (one snapshot), clamped
    /// to the committed head; a full page of messages ends the range at its last one.
    func readStream(_ span: StreamSpan, limit: Int, completion: @escaping @Sendable (Result<StreamRange, StoreError>) -> Void) {
        let statement = PostgresStatement("""
            WITH head AS (SELECT least(last_seq, $2::bigint) AS through FROM stream_head),
            page AS (
                SELECT * FROM messages WHERE seq + 0 > $1::bigint AND seq + 0 <= (SELECT through FROM head) ORDER BY seq + 0 LIMIT $3
            ), cut AS (
                SELECT CASE WHEN (SELECT count(*) FROM page) >= $3 THEN (SELECT max(seq) FROM page) ELSE (SELECT through FROM head) END AS through
            )
            SELECT 'm' AS kind, \(Self.messageColumns("p")),
                   NULL::text AS user_id, NULL::text AS peer_id, NULL::text AS read_seq, NULL::text AS peer_read_seq, NULL::text AS receipt_seq
            FROM page p
            UNION ALL
            SELECT 'r', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                   c.user_id::text, c.peer_id::text, c.read_seq::text, c.peer_read_seq::text, c.receipt_seq::text
            FROM conversations c WHERE c.receipt_seq > $1::bigint AND c.receipt_seq <= (SELECT through FROM cut)
            UNION ALL
            SELECT 'h', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, (SELECT through FROM cut)::text
            """, [String(span.after), String(span.through), String(limit)], preparedName: "chat_stream_range")
        pool.submit(statement) { result in
            completion(Self.map(result) { rows in
                var messages: [StoredMessage] = [], receipts: [StreamRange.Receipt] = []
                var through: Int64?
                let columns = MessageColumns(rows)
                guard let kind = rows.columnIndex("kind"), let userID = rows.columnIndex("user_id"), let peerID = rows.columnIndex("peer_id"),
                      let readSeq = rows.columnIndex("read_seq"), let peerReadSeq = rows.columnIndex("peer_read_seq"),
                      let receiptSeq = rows.columnIndex("receipt_seq") else { return .failure(.failed("a stream range without its columns")) }
                messages.reserveCapacity(rows.count)
                for row in 0..<rows.count {
                    switch rows.withValue(row, kind, { $0?.first }) {
                    case UInt8(ascii: "m"):
                        let found = Self.message(rows, row, columns)
                        guard let senderID = found.senderID, let receiverID = found.receiverID, let seq = found.seq else { continue }
                        messages.append(StoredMessage(id: found.id, senderID: senderID, receiverID: receiverID, content: found.content ?? "",
                                                      createdAt: found.createdAt ?? "", seq: seq, clientID: found.clientID))
                    case UInt8(ascii: "r"):
                        guard let userID = rows.value(row, userID), let peerID = rows.value(row, peerID), let position = rows.int64(row, receiptSeq) else { continue }
                        receipts.append(StreamRange.Receipt(userID: userID, state: ReceiptState(
                            peerID: peerID, readSeq: rows.int64(row, readSeq) ?? 0, peerReadSeq: rows.int64(row, peerReadSeq) ?? 0, position: position)))
                    default:
                        through = rows.int64(row, receiptSeq)
                    }
                }
                guard let through else { return .failure(.failed("no head for a stream range")) }
                messages.sort { $0.seq < $1.seq }
                receipts.sort { ($0.state.position, $0.userID) < ($1.state.position, $1.userID) }
                return .success(StreamRange(messages: messages, receipts: receipts, through: max(span.after, through)))
            })
        }
    }

    func committedHead(completion: @escaping @Sendable (Result<Int64, StoreError>) -> Void) {
        pool.submit(PostgresStatement("SELECT last_seq::text AS head FROM stream_head", preparedName: "chat_committed_head")) { result in
            completion(Self.map(result) { rows in rows.value(0, "head").flatMap { Int64($0) }.map { .success($0) } ?? .failure(.failed("no stream head")) })
        }
    }

    /// The batch insert. Rows whose receiver is no user are left out by the join; a client_id
    /// its sender used before (or earlier in the batch) by the unique index. Both come back as
    /// missing from RETURNING, and only client_id rows can be repeats. A batch without
    /// client_ids (most, at saturation) takes the plain statement: no conflict arbitration per
    /// row. The same statement keeps each pair's conversation row (both sides) at its last
    /// message, and the receiver's side's unread count up by its messages: one upsert per pair
    /// in the batch, in key order so that concurrent batches lock rows in the same order.
    private static func insertStatement(_ messages: [NewMessage]) -> PostgresStatement {
        let hasClientIDs = messages.contains { $0.clientID != nil }
        return PostgresStatement("""
            WITH inserted AS (
                INSERT INTO messages (id, sender_id, receiver_id, content\(hasClientIDs ? ", client_id" : ""))
                SELECT i.id, i.sender_id, i.receiver_id, i.content\(hasClientIDs ? ", i.client_id" : "")
                FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[]\(hasClientIDs ? ", $5::uuid[]" : ""))
                     WITH ORDINALITY AS i(id, sender_id, receiver_id, content, \(hasClientIDs ? "client_id, " : "")n)
                JOIN users u ON u.id = i.receiver_id
                ORDER BY i.n
                \(hasClientIDs ? "ON CONFLICT (sender_id, client_id) WHERE client_id IS NOT NULL DO NOTHING" : "")
                RETURNING id, sender_id, receiver_id, created_at, seq
            ), kept AS (
                INSERT INTO conversations (user_id, peer_id, last_seq, unread)
                SELECT user_id, peer_id, max(seq), count(*) FILTER (WHERE incoming) FROM (
                    SELECT sender_id AS user_id, receiver_id AS peer_id, seq, false AS incoming FROM inserted
                    UNION ALL
                    SELECT receiver_id, sender_id, seq, true FROM inserted WHERE receiver_id <> sender_id
                ) pairs
                GROUP BY user_id, peer_id
                ORDER BY user_id, peer_id
                ON CONFLICT (user_id, peer_id) DO UPDATE
                    SET last_seq = greatest(conversations.last_seq, excluded.last_seq), unread = conversations.unread + excluded.unread
            )
            SELECT id::text AS id, created_at::text AS created_at, seq::text AS seq FROM inserted
            """, [PostgresArrayLiteral.text(messages.map(\.id)), PostgresArrayLiteral.text(messages.map(\.senderID)),
                  PostgresArrayLiteral.text(messages.map(\.receiverID)), PostgresArrayLiteral.text(messages.map(\.content))]
                + (hasClientIDs ? [PostgresArrayLiteral.text(messages.map(\.clientID))] : []),
            preparedName: hasClientIDs ? "chat_insert_messages_idempotent" : "chat_insert_messages")
    }

    /// `inserted` with the repeats among the rows missing from RETURNING that have a client_id
    /// (a lookup only when there are any).
    private func findRepeats(in messages: [NewMessage], inserted: [InsertedMessage],
                             completion: @escaping @Sendable (Result<[InsertedMessage], StoreError>) -> Void) {
        let missingWithClientID = messages.indices.filter { inserted[$0] == .unknownReceiver && messages[$0].clientID != nil }
        guard !missingWithClientID.isEmpty else { return completion(.success(inserted)) }
        findRepeats(of: missingWithClientID.map { messages[$0] }) { result in
            var inserted = inserted
            switch result {
            case .success(let originals):
                for (index, original) in zip(missingWithClientID, originals) {
                    if let original { inserted[index] = .repeatOf(original) }
                }
            case .failure:
                // The batch is committed: it is not reported as failed (its stored messages
                // would be sent again, and its places lost); only these are left unsaid.
                for index in missingWithClientID { inserted[index] = .repeatNotFound }
            }
            completion(.success(inserted))
        }
    }

    /// For each message, the one its sender stored before with the same client_id, or nil.
    /// A statement of its own, after the INSERT committed: it sees a first copy stored by the
    /// same batch, or by another process while the INSERT waited on it.
    private func findRepeats(of messages: [NewMessage], completion: @escaping @Sendable (Result<[StoredMessage?], StoreError>) -> Void) {
        let statement = PostgresStatement("""
            SELECT i.n::text AS n, \(Self.messageColumns("m"))
            FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS i(sender_id, client_id, n)
            JOIN messages m ON m.sender_id = i.sender_id AND m.client_id = i.client_id
            """, [PostgresArrayLiteral.text(messages.map(\.senderID)), PostgresArrayLiteral.text(messages.map(\.clientID))])
        pool.submit(statement) { result in
            completion(Self.map(result) { rows in
                var originals = [StoredMessage?](repeating: nil, count: messages.count)
                let columns = MessageColumns(rows)
                for row in 0..<rows.count {
                    let found = Self.message(rows, row, columns)
                    guard let n = rows.value(row, "n").flatMap({ Int($0) }), (1...messages.count).contains(n),
                          let senderID = found.senderID, let receiverID = found.receiverID, let seq = found.seq else { continue }
                    originals[n - 1] = StoredMessage(id: found.id, senderID: senderID, receiverID: receiverID, content: found.content ?? "",
                                                     createdAt: found.createdAt ?? "", seq: seq, clientID: found.clientID)
                }
                return .success(originals)
            })
        }
    }

    /// What RETURNING `id, created_at, seq` says of each of a batch's ids: stored (created_at
    /// in the wire form), or `.unknownReceiver` when its row is not there (left out). RETURNING
    /// lists rows in the order inserted — the batch's, minus rows left out — so both are walked
    /// together without hashing; from the first row out of step on, a lookup by id takes over.
    /// A batch shares one transaction time: it is converted once.
    static func insertedMessages(ids: [String], rows: PostgresRows) -> [InsertedMessage]? {
        guard let idColumn = rows.columnIndex("id"), let createdAtColumn = rows.columnIndex("created_at"), let seqColumn = rows.columnIndex("seq") else {
            return nil
        }
        var values: [InsertedMessage] = []
        values.reserveCapacity(ids.count)
        var lastText = "", lastConverted = ""
        func stored(_ row: Int) -> InsertedMessage {
            if !rows.value(row, createdAtColumn, equals: lastText) {
                lastText = rows.value(row, createdAtColumn) ?? ""
                lastConverted = Timestamps.fromPostgres(lastText)
            }
            return .stored(seq: rows.int64(row, seqColumn) ?? 0, createdAt: lastConverted)
        }
        var row = 0
        var byID: [String: Int]?
        for id in ids {
            if byID == nil, row < rows.count, rows.value(row, idColumn, equals: id) {
                values.append(stored(row))
                row += 1
                continue
            }
            if byID == nil {
                byID = Dictionary((row..<rows.count).map { (rows.value($0, idColumn) ?? "", $0) }, uniquingKeysWith: { first, _ in first })
            }
            values.append(byID?[id].map { stored($0) } ?? .unknownReceiver)
        }
        return values
    }

    /// The last place handed out in the sequence messages and receipts share (0 for none).
    /// It may be a place not yet committed: a cursor beyond it is none of this database's.
    private static let headStatement = PostgresStatement(
        "SELECT (CASE WHEN is_called THEN last_value ELSE last_value - 1 END)::text AS head FROM messages_seq_seq",
        preparedName: "chat_stream_head")

    func conversations(of userID: String, before: (seq: Int64, peerID: String)?, limit: Int,
                       completion: @escaping @Sendable (Result<[Conversation], StoreError>) -> Void) {
        // First the walk: the newest messages of the user's stream (before the page's start),
        // a bounded run of each of its two indexes, keeping those that are the last message of
        // their conversation — each conversation has exactly one, and last_seq is unique per
        // user. Enough of them above where a run was cut make the page, whatever the number of
        // conversations. Otherwise (a few peers wrote everything lately) the user's rows are
        // read and sorted. The unread count is the row's own, kept by every message and receipt.
        let walkLength = limit * 4 + 50
        let walk = PostgresStatement("""
            WITH received AS MATERIALIZED (
                SELECT seq, sender_id AS peer FROM messages
                WHERE receiver_id = $1::uuid AND seq < coalesce($2::bigint, 9223372036854775807) ORDER BY seq DESC LIMIT $4
            ), sent AS MATERIALIZED (
                SELECT seq, receiver_id AS peer FROM messages
                WHERE sender_id = $1::uuid AND receiver_id <> $1::uuid AND seq < coalesce($2::bigint, 9223372036854775807)
                ORDER BY seq DESC LIMIT $4
            ), cut AS (
                SELECT greatest(CASE WHEN (SELECT count(*) FROM received) = $4 THEN (SELECT min(seq) FROM received) ELSE 0 END,
                                CASE WHEN (SELECT count(*) FROM sent) = $4 THEN (SELECT min(seq) FROM sent) ELSE 0 END) AS seq
            ), found AS (
                -- Newest first, one primary-key probe per message until the page is full (the
                -- OFFSET 0 keeps the probe per row: never a join over the user's rows).
                SELECT c.* FROM (SELECT * FROM (SELECT * FROM received UNION ALL SELECT * FROM sent) merged
                                 WHERE seq >= (SELECT seq FROM cut) ORDER BY seq DESC) w,
                     LATERAL (SELECT * FROM conversations c WHERE c.user_id = $1::uuid AND c.peer_id = w.peer AND c.last_seq = w.seq OFFSET 0) c
                ORDER BY w.seq DESC
                LIMIT $3
            )
            SELECT ((SELECT count(*) FROM found) = $3 OR (SELECT seq FROM cut) = 0) AS complete, page.*
            FROM (SELECT 1) one LEFT JOIN (\(Self.conversationPage(from: "found"))) page ON true
            ORDER BY page.sort_seq DESC NULLS LAST
            """, [userID, before.map { String($0.seq) }, String(limit), String(walkLength)], preparedName: "chat_conversations_walk")
        pool.submit(walk) { [pool] result in
            switch Self.map(result, { rows in .success((rows.value(0, "complete") == "t", Self.conversations(rows))) }) {
            case .failure(let error):
                completion(.failure(error))
            case .success((true, let page)):
                completion(.success(page))
            case .success((false, _)):
                let sorted = PostgresStatement("""
                    SELECT page.* FROM (\(Self.conversationPage(from: """
                        (SELECT * FROM conversations
                         WHERE user_id = $1::uuid AND ($2::bigint IS NULL OR (last_seq, peer_id) < ($2::bigint, $3::uuid))
                         ORDER BY last_seq DESC, peer_id DESC
                         LIMIT $4)
                        """))) page
                    ORDER BY page.sort_seq DESC
                    """, [userID, before.map { String($0.seq) }, before?.peerID, String(limit)], preparedName: "chat_conversations_sorted")
                pool.submit(sorted) { result in completion(Self.map(result) { .success(Self.conversations($0)) }) }
            }
        }
    }

    /// The columns of a conversation list for the conversation rows `rows` (a table or a
    /// parenthesised query): the peer and the last message looked up, by primary key and by
    /// the conversation index.
    private static func conversationPage(from rows: String) -> String {
        """
        SELECT c.last_seq AS sort_seq, c.peer_id::text AS peer_id, u.email AS peer_email, u.username AS peer_username,
               c.last_seq::text AS last_seq, c.read_seq::text AS read_seq, c.peer_read_seq::text AS peer_read_seq,
               \(messageColumns("m")), least(c.unread, \(Conversation.maxUnread))::text AS unread
        FROM \(rows) c
        LEFT JOIN users u ON u.id = c.peer_id
        LEFT JOIN messages m ON m.seq = c.last_seq AND least(m.sender_id, m.receiver_id) = least(c.user_id, c.peer_id)
                                AND greatest(m.sender_id, m.receiver_id) = greatest(c.user_id, c.peer_id)
        """
    }

    private static func conversations(_ rows: PostgresRows) -> [Conversation] {
        let columns = MessageColumns(rows)
        return (0..<rows.count).compactMap { row -> Conversation? in
            guard let peerID = rows.value(row, "peer_id"), let lastSeq = rows.value(row, "last_seq").flatMap({ Int64($0) }) else { return nil }
            let message = rows.value(row, "id") == nil ? nil : Self.message(rows, row, columns)
            return Conversation(peer: User(id: peerID, email: rows.value(row, "peer_email") ?? "", username: rows.value(row, "peer_username")),
                                lastMessage: message, lastSeq: lastSeq, readSeq: rows.value(row, "read_seq").flatMap { Int64($0) } ?? 0,
                                peerReadSeq: rows.value(row, "peer_read_seq").flatMap { Int64($0) } ?? 0,
                                unread: rows.value(row, "unread").flatMap { Int($0) } ?? 0)
        }
    }

    /// The receipts of a write (`ChatStore.write`), in one statement.
    private static func markReadStatement(_ requests: [ReadRequest]) -> PostgresStatement {
        func id(_ request: ReadRequest) -> String? { if case .message(let id) = request.upTo { id } else { nil } }
        func seq(_ request: ReadRequest) -> String? { if case .position(let seq) = request.upTo { String(seq) } else { nil } }
        // Each request's bound as a sequence (a message of its conversation, or the cursor's);
        // per conversation the furthest bound that moves the watermark and is no later than
        // the last message; one new place in the sequence per conversation moved, in key
        // order; both rows of the pair moved to it (the reader's read_seq, the peer's
        // peer_read_seq), the reader's unread count recounted after it (at most
        // Conversation.maxUnread rows of the conversation index). The answer reads the rows as
        // they were before (same snapshot).
        return PostgresStatement("""
            WITH request AS (
                SELECT r.n, r.reader, r.peer,
                       CASE WHEN r.message IS NOT NULL
                            THEN (SELECT m.seq FROM messages m
                                  WHERE m.id = r.message
                                    AND least(m.sender_id, m.receiver_id) = least(r.reader, r.peer)
                                    AND greatest(m.sender_id, m.receiver_id) = greatest(r.reader, r.peer)
                                    AND ((m.sender_id = r.reader AND m.receiver_id = r.peer) OR (m.sender_id = r.peer AND m.receiver_id = r.reader)))
                            ELSE r.position END AS target
                FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[]) WITH ORDINALITY AS r(reader, peer, message, position, n)
            ), furthest AS (
                -- Per conversation the furthest bound, and the first request that asks for it
                -- (it announces the move, and the places go in the order of those requests, the
                -- order their answers are given in).
                SELECT q.reader, q.peer, max(q.target) AS target, (array_agg(q.n ORDER BY q.target DESC, q.n))[1] AS announcer
                FROM request q JOIN conversations c ON c.user_id = q.reader AND c.peer_id = q.peer
                WHERE q.target <= c.last_seq AND q.target > c.read_seq
                GROUP BY q.reader, q.peer
            ), placed AS MATERIALIZED (
                SELECT reader, peer, target, announcer, nextval('messages_seq_seq') AS receipt_seq,
                       (SELECT count(*) FROM (SELECT 1 FROM messages x
                                              WHERE least(x.sender_id, x.receiver_id) = least(f.reader, f.peer)
                                                AND greatest(x.sender_id, x.receiver_id) = greatest(f.reader, f.peer)
                                                AND x.seq > f.target AND x.sender_id = f.peer AND x.receiver_id = f.reader
                                                AND f.peer <> f.reader
                                              LIMIT \(Conversation.maxUnread)) after_target) AS unread
                FROM (SELECT * FROM furthest ORDER BY announcer) f
            ), changes AS (
                -- One change per row: when both people of a conversation read in one batch, each
                -- row gets its reader's side and its peer's side (two UPDATEs of one row in one
                -- statement would keep only one of them).
                SELECT user_id, peer_id, max(read_seq) AS read_seq, max(unread) AS unread, max(peer_read_seq) AS peer_read_seq,
                       max(receipt_seq) AS receipt_seq
                FROM (SELECT reader AS user_id, peer AS peer_id, target AS read_seq, unread, NULL::bigint AS peer_read_seq, receipt_seq FROM placed
                      UNION ALL
                      SELECT peer, reader, NULL, NULL, target, receipt_seq FROM placed WHERE peer <> reader) sides
                GROUP BY user_id, peer_id
            ), written AS (
                UPDATE conversations c
                SET read_seq = coalesce(ch.read_seq, c.read_seq), unread = coalesce(ch.unread, c.unread),
                    peer_read_seq = greatest(c.peer_read_seq, ch.peer_read_seq), receipt_seq = greatest(c.receipt_seq, ch.receipt_seq)
                FROM changes ch WHERE c.user_id = ch.user_id AND c.peer_id = ch.peer_id
            )
            SELECT q.n::text AS n, q.target::text AS target, c.last_seq::text AS last_seq, c.read_seq::text AS read_seq,
                   p.target::text AS moved_to, CASE WHEN p.announcer = q.n THEN p.receipt_seq END::text AS receipt_seq,
                   least(coalesce(p.unread, c.unread), \(Conversation.maxUnread))::text AS unread
            FROM request q
            LEFT JOIN conversations c ON c.user_id = q.reader AND c.peer_id = q.peer
            LEFT JOIN placed p ON p.reader = q.reader AND p.peer = q.peer
            ORDER BY q.n
            """, [PostgresArrayLiteral.text(requests.map(\.userID)), PostgresArrayLiteral.text(requests.map(\.peerID)),
                  PostgresArrayLiteral.text(requests.map(id)), PostgresArrayLiteral.text(requests.map(seq))],
            preparedName: "chat_mark_read")
    }

    /// Each receipt's outcome from the rows of `markReadStatement`.
    private static func readMarks(_ rows: PostgresRows, count: Int) -> Result<[Result<ReadMark?, StoreError>], StoreError> {
        guard rows.count == count else { return .failure(.failed("mark_read answered \(rows.count) rows for \(count)")) }
        return .success((0..<rows.count).map { row -> Result<ReadMark?, StoreError> in
            guard let lastSeq = rows.value(row, "last_seq").flatMap({ Int64($0) }) else { return .success(nil) }
            guard let target = rows.value(row, "target").flatMap({ Int64($0) }) else {
                return .failure(.invalidReference("up_to must be the id of a message in this conversation or a cursor"))
            }
            guard target <= lastSeq else { return .failure(.invalidReference("up_to is ahead of this conversation's last message")) }
            let before = rows.value(row, "read_seq").flatMap { Int64($0) } ?? 0
            let movedTo = rows.value(row, "moved_to").flatMap { Int64($0) }
            // The first request for the conversation's new watermark announces the move.
            let receiptSeq = rows.value(row, "receipt_seq").flatMap { Int64($0) }
            return .success(ReadMark(readSeq: movedTo ?? before, moved: target > before, unread: rows.value(row, "unread").flatMap { Int($0) } ?? 0,
                                     receiptSeq: receiptSeq))
        })
    }

    func peers(of userID: String, completion: @escaping @Sendable (Result<[String], StoreError>) -> Void) {
        pool.submit(PostgresStatement("SELECT peer_id::text AS peer_id FROM conversations WHERE user_id = $1::uuid AND peer_id <> $1::uuid",
                                      [userID], preparedName: "chat_peers")) { result in
            completion(Self.map(result) { rows in .success((0..<rows.count).compactMap { rows.value($0, "peer_id") }) })
        }
    }

    func allBlocks(completion: @escaping @Sendable (Result<[(blocker: String, blocked: String)], StoreError>) -> Void) {
        pool.submit(PostgresStatement("SELECT blocker_id::text AS blocker, blocked_id::text AS blocked FROM blocks")) { result in
            completion(Self.map(result) { rows in
                .success((0..<rows.count).compactMap { row in
                    guard let blocker = rows.value(row, "blocker"), let blocked = rows.value(row, "blocked") else { return nil }
                    return (blocker, blocked)
                })
            })
        }
    }

    func setBlock(blocker: String, blocked: String, blocking: Bool, completion: @escaping @Sendable (Result<Bool, StoreError>) -> Void) {
        // The answer says whether the blocked user exists, whatever the row did.
        let sql = blocking
            ? """
              WITH target AS (SELECT id FROM users WHERE id = $2::uuid),
                   added AS (INSERT INTO blocks (blocker_id, blocked_id) SELECT $1::uuid, id FROM target ON CONFLICT DO NOTHING)
              SELECT EXISTS (SELECT 1 FROM target) AS found
              """
            : """
              WITH removed AS (DELETE FROM blocks WHERE blocker_id = $1::uuid AND blocked_id = $2::uuid)
              SELECT EXISTS (SELECT 1 FROM users WHERE id = $2::uuid) AS found
              """
        pool.submit(PostgresStatement(sql, [blocker, blocked])) { result in
            completion(Self.map(result) { .success($0.value(0, "found") == "t") })
        }
    }

    func blockedUsers(of blocker: String, completion: @escaping @Sendable (Result<[(user: User, since: String)], StoreError>) -> Void) {
        let statement = PostgresStatement("""
            SELECT u.id::text AS id, u.email, u.username, (b.created_at AT TIME ZONE 'UTC')::text AS since
            FROM blocks b JOIN users u ON u.id = b.blocked_id WHERE b.blocker_id = $1::uuid ORDER BY b.created_at, u.id
            """, [blocker])
        pool.submit(statement) { result in
            completion(Self.map(result) { rows in
                .success((0..<rows.count).compactMap { row in
                    guard let user = Self.user(rows, row), let since = rows.value(row, "since") else { return nil }
                    return (user, Timestamps.fromPostgres(since))
                })
            })
        }
    }

    func recordLastSeen(_ times: [(userID: String, time: String)], completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
        let statement = PostgresStatement("""
            UPDATE users u SET last_seen = greatest(u.last_seen, v.seen)
            FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, seen) WHERE u.id = v.id
            """, [PostgresArrayLiteral.text(times.map(\.userID)), PostgresArrayLiteral.text(times.map(\.time))])
        pool.submit(statement) { result in completion(Self.map(result) { _ in .success(()) }) }
    }

    func lastSeen(of userID: String, completion: @escaping @Sendable (Result<String??, StoreError>) -> Void) {
        pool.submit(PostgresStatement("SELECT (last_seen AT TIME ZONE 'UTC')::text AS last_seen FROM users WHERE id = $1::uuid", [userID])) { result in
            completion(Self.map(result) { rows in
                guard rows.count > 0 else { return .success(nil) }
                return .success(.some(rows.value(0, "last_seen").map(Timestamps.fromPostgres)))
            })
        }
    }

    func conversationExists(between userID: String, and otherID: String, completion: @escaping @Sendable (Result<Bool, StoreError>) -> Void) {
        let statement = PostgresStatement("SELECT EXISTS (SELECT 1 FROM messages m WHERE \(Self.inConversation("m"))) AS found", [userID, otherID],
                                          preparedName: "chat_conversation_exists")
        pool.submit(statement) { result in
            completion(Self.map(result) { .success($0.value(0, "found") == "t") })
        }
    }

    func searchUsers(_ search: UserSearch, completion: @escaping @Sendable (Result<[User], StoreError>) -> Void) {
        // A LIKE pattern matching the prefix literally, then anything.
        var pattern = ""
        for character in search.prefix {
            if character == "\\" || character == "%" || character == "_" { pattern.append("\\") }
            pattern.append(character)
        }
        pattern += "%"
        let column = search.phase == 0 ? "username" : "email"
        // The email phase leaves out whom the username phase found.
        let notFoundBefore = search.phase == 0 ? "" : #"AND NOT (coalesce(lower(username), '') COLLATE "C" LIKE lower($1) ESCAPE '\')"#
        let page = PostgresStatement("""
            SELECT \(Self.userColumns) FROM users
            WHERE lower(\(column)) COLLATE "C" LIKE lower($1) ESCAPE '\\' \(notFoundBefore)
              AND ($2::uuid IS NULL OR (lower(\(column)) COLLATE "C", id) > (SELECT lower(a.\(column)) COLLATE "C", a.id FROM users a WHERE a.id = $2::uuid))
            ORDER BY lower(\(column)) COLLATE "C", id
            LIMIT $3
            """, [pattern, search.afterID, String(search.limit)])
        var statements = [page]
        if let afterID = search.afterID {
            statements.insert(PostgresStatement("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1::uuid) AS found", [afterID]), at: 0)
        }
        pool.submit(statements) { result in
            completion(Self.map(result) { results in
                if results.count == 2, results[0].value(0, "found") != "t" {
                    return .failure(.invalidReference("after must be the next of a previous page"))
                }
                guard let rows = results.last else { return .failure(.failed("no result for the user search")) }
                return .success((0..<rows.count).compactMap { Self.user(rows, $0) })
            })
        }
    }

    func checkHealth(completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
        pool.submit(PostgresStatement("SELECT 1")) { result in
            completion(Self.map(result) { _ in .success(()) })
        }
    }

    private static func user(_ rows: PostgresRows, _ row: Int) -> User? {
        guard row < rows.count, let id = rows.value(row, "id"), let email = rows.value(row, "email") else { return nil }
        return User(id: id, email: email, username: rows.value(row, "username"))
    }

    private static func map<Rows, T>(_ result: Result<Rows, PostgresError>, uniqueViolation: StoreError? = nil,
                                     _ transform: (Rows) -> Result<T, StoreError>) -> Result<T, StoreError> {
        switch result {
        case .success(let rows):
            return transform(rows)
        case .failure(let error):
            if error.isUniqueViolation, let uniqueViolation { return .failure(uniqueViolation) }
            switch error.kind {
            case .unavailable, .overloaded, .connectionLost, .shuttingDown, .connectionFailed:
                logger.warning("database: \(error)")
                return .failure(.unavailable)
            case .server:
                logger.error("database: \(error)")
                return .failure(.failed(error.description))
            }
        }
    }
}
