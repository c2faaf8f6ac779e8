import ChatCore
import PostgresClient
import ServerRuntime

/// `ChatStore` on PostgreSQL through the non-blocking pool. Every statement is parameterised.
struct PostgresChatStore: ChatStore {
    let pool: PostgresPool

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
            "SELECT \(Self.userColumns), password FROM users WHERE lower(email) = lower($1) ORDER BY (email = $1) DESC, id LIMIT 1",
            [email])
        pool.submit(statement) { result in
            completion(Self.map(result) { rows in
                guard let user = Self.user(rows, 0), let hash = rows.value(0, "password") else { return .success(nil) }
                return .success(UserCredentials(user: user, passwordHash: hash))
            })
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

    func history(between userID: String, and otherID: String, page: HistoryPage,
                 completion: @escaping @Sendable (Result<[ChatMessage], StoreError>) -> Void) {
        // Bounds are messages of this conversation, by id; their sequence numbers bound the page
        // (exclusive). A bound of another conversation bounds nothing: it is refused.
        let pageSQL = PostgresStatement("""
            SELECT m.id::text AS id, m.sender_id::text AS sender_id, m.receiver_id::text AS receiver_id, m.content,
                   m.created_at::text AS created_at
            FROM messages m
            WHERE \(Self.inConversation("m"))
              AND ($5::uuid IS NULL OR m.seq < (SELECT b.seq FROM messages b WHERE b.id = $5::uuid AND \(Self.inConversation("b"))))
              AND ($6::uuid IS NULL OR m.seq > (SELECT a.seq FROM messages a WHERE a.id = $6::uuid AND \(Self.inConversation("a"))))
            ORDER BY m.seq \(page.newestFirst ? "DESC" : "ASC")
            LIMIT $3 OFFSET $4
            """, [userID, otherID, String(page.limit), String(page.offset), page.beforeID, page.afterID])
        var statements = [pageSQL]
        if page.beforeID != nil || page.afterID != nil {
            // In the same round trip, before the page: do the bounds exist here?
            statements.insert(PostgresStatement("""
                SELECT ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM messages b WHERE b.id = $3::uuid AND \(Self.inConversation("b")))) AS before_found,
                       ($4::uuid IS NULL OR EXISTS (SELECT 1 FROM messages a WHERE a.id = $4::uuid AND \(Self.inConversation("a")))) AS after_found
                """, [userID, otherID, page.beforeID, page.afterID]), at: 0)
        }
        pool.submit(statements) { result in
            completion(Self.map(result) { results in
                if results.count == 2 {
                    for (column, name) in [("before_found", "before"), ("after_found", "after")] where results[0].value(0, column) != "t" {
                        return .failure(.invalidReference("\(name) must be the id of a message in this conversation"))
                    }
                }
                guard let rows = results.last else { return .failure(.failed("no result for the history page")) }
                return .success((0..<rows.count).map { row in
                    ChatMessage(id: rows.value(row, "id") ?? "", senderID: rows.value(row, "sender_id"),
                                receiverID: rows.value(row, "receiver_id"), content: rows.value(row, "content"),
                                createdAt: rows.value(row, "created_at").map(Timestamps.fromPostgres))
                })
            })
        }
    }

    func insertMessages(_ messages: [NewMessage], completion: @escaping @Sendable (Result<[String?], StoreError>) -> Void) {
        let ids = messages.map(\.id)
        // Rows whose receiver is no user are left out by the join and reported as such.
        let statement = PostgresStatement("""
            INSERT INTO messages (id, sender_id, receiver_id, content)
            SELECT i.id, i.sender_id, i.receiver_id, i.content
            FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[]) WITH ORDINALITY AS i(id, sender_id, receiver_id, content, n)
            JOIN users u ON u.id = i.receiver_id
            ORDER BY i.n
            RETURNING id::text AS id, created_at::text AS created_at
            """, [PostgresArrayLiteral.text(ids), PostgresArrayLiteral.text(messages.map(\.senderID)),
                  PostgresArrayLiteral.text(messages.map(\.receiverID)), PostgresArrayLiteral.text(messages.map(\.content))],
            preparedName: "chat_insert_messages")
        pool.submit(statement) { result in
            completion(Self.map(result) { rows in
                var createdAt = Self.returnedValues(ids: ids, rows: rows.rows)
                // A batch shares one transaction time: converted once, in place.
                var lastText = "", lastConverted = ""
                for index in createdAt.indices {
                    guard let text = createdAt[index] else { continue }
                    if text != lastText { (lastText, lastConverted) = (text, Timestamps.fromPostgres(text)) }
                    createdAt[index] = lastConverted
                }
                return .success(createdAt)
            })
        }
    }

    /// For each of a batch's ids, the second column of the `RETURNING id, …` row that carries
    /// it ("" for NULL), or nil when its row was left out (an unknown receiver). RETURNING lists
    /// rows in the order inserted — the batch's, minus rows left out — so both are walked
    /// together without hashing; from the first row out of step on, a lookup by id takes over.
    static func returnedValues(ids: [String], rows: [[String?]]) -> [String?] {
        var values: [String?] = []
        values.reserveCapacity(ids.count)
        var row = 0
        var byID: [String: String]?
        for id in ids {
            if byID == nil, row < rows.count, rows[row][0] == id {
                values.append(rows[row][1] ?? "")
                row += 1
                continue
            }
            if byID == nil {
                byID = Dictionary(rows[row...].map { ($0[0] ?? "", $0[1] ?? "") }, uniquingKeysWith: { first, _ in first })
            }
            values.append(byID?[id])
        }
        return values
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
                Log.warning("database: \(error)")
                return .failure(.unavailable)
            case .server:
                Log.error("database: \(error)")
                return .failure(.failed(error.description))
            }
        }
    }
}
