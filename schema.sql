-- The chat database. Idempotent: applies to an empty database, to one the Node.js server
-- made (users without username or id default, messages without a sequence), and again to
-- its own result. Applied by `ChatServer migrate` (make run / make test do it).
BEGIN;
SET LOCAL client_min_messages = warning;

-- One migration at a time, whoever runs it.
SELECT pg_advisory_xact_lock(727465);

CREATE TABLE IF NOT EXISTS users (
    id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username text,
    email    text UNIQUE NOT NULL,
    password text NOT NULL
);
-- The Node server's README omits both; its code relies on them.
ALTER TABLE users ADD COLUMN IF NOT EXISTS username text;
ALTER TABLE users ALTER COLUMN id SET DEFAULT gen_random_uuid();

CREATE TABLE IF NOT EXISTS messages (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sender_id   uuid,
    receiver_id uuid,
    content     text,
    created_at  timestamp DEFAULT current_timestamp
);
ALTER TABLE messages ALTER COLUMN id SET DEFAULT gen_random_uuid();

-- Messages are ordered by a monotonically increasing sequence, not by created_at (which a
-- whole batch shares). Rows from before the column get numbers in their old order.
CREATE SEQUENCE IF NOT EXISTS messages_seq_seq AS bigint;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS seq bigint;
DO $$
DECLARE
    base bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM messages WHERE seq IS NULL) THEN
        LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE;
        SELECT coalesce(max(seq), 0) INTO base FROM messages;
        UPDATE messages m SET seq = base + o.n
        FROM (SELECT id, row_number() OVER (ORDER BY created_at NULLS FIRST, id) AS n
              FROM messages WHERE seq IS NULL) o
        WHERE m.id = o.id;
        PERFORM setval('messages_seq_seq', greatest((SELECT max(seq) FROM messages),
                                                    (SELECT last_value FROM messages_seq_seq)));
    END IF;
END $$;
ALTER TABLE messages ALTER COLUMN seq SET DEFAULT nextval('messages_seq_seq');
ALTER TABLE messages ALTER COLUMN seq SET NOT NULL;
ALTER SEQUENCE messages_seq_seq OWNED BY messages.seq;
-- No index on seq alone: the sequence makes it unique, every read by seq also knows the
-- conversation or the user (the indexes below), and with one the planner would walk it
-- backwards through every message to find one user's newest (seconds on 10 million rows).
DROP INDEX IF EXISTS messages_seq_key;

-- History of a conversation, both directions in one index range, in sequence order.
CREATE INDEX IF NOT EXISTS messages_conversation_idx
    ON messages (least(sender_id, receiver_id), greatest(sender_id, receiver_id), seq);

-- A user's stream (what they received and what they sent, from any device) in sequence order:
-- a resume or sync reads a range of each index and merges the two.
CREATE INDEX IF NOT EXISTS messages_receiver_seq_idx ON messages (receiver_id, seq);
CREATE INDEX IF NOT EXISTS messages_sender_seq_idx ON messages (sender_id, seq);

-- Idempotent send: the UUID a client made for a message, unique per sender, so a repeat
-- stores nothing whichever process or connection it comes through.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS client_id uuid;
CREATE UNIQUE INDEX IF NOT EXISTS messages_sender_client_id_key
    ON messages (sender_id, client_id) WHERE client_id IS NOT NULL;

-- Finding people by the start of their username or email (GET /api/users?q=): each a range of
-- an index in byte order ("C"), which is what LIKE 'prefix%' and the paging need.
CREATE INDEX IF NOT EXISTS users_username_prefix_idx ON users ((lower(username) COLLATE "C"), id);
CREATE INDEX IF NOT EXISTS users_email_prefix_idx ON users ((lower(email) COLLATE "C"), id);

-- Emails are compared case-insensitively. A database whose emails already collide that way
-- gets a plain index (and a warning) instead of a unique one.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_indexes WHERE tablename = 'users'
                   AND indexname IN ('users_email_lower_key', 'users_email_lower_idx')) THEN
        IF EXISTS (SELECT lower(email) FROM users GROUP BY lower(email) HAVING count(*) > 1) THEN
            RAISE WARNING 'users has emails that differ only in case; they stay, but new ones are not checked that way';
            CREATE INDEX users_email_lower_idx ON users (lower(email));
        ELSE
            CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
        END IF;
    END IF;
END $$;

-- Conversations: one row per user and peer they exchanged messages with, kept by the message
-- insert itself — the sequence of the last message, and how far the user has read the peer's
-- (the read watermark, which only moves forward). Only the primary key is indexed, and pages
-- keep room, so the update each message makes is a HOT update (no index entry): an index on
-- last_seq cost 10-15 % of saturation throughput. The list, newest first, is the user's range
-- of the primary key with a top-N sort (README, API).
CREATE TABLE IF NOT EXISTS conversations (
    user_id  uuid NOT NULL,
    peer_id  uuid NOT NULL,
    last_seq bigint NOT NULL,
    read_seq bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, peer_id)
) WITH (fillfactor = 70);
ALTER TABLE conversations SET (fillfactor = 70);
DROP INDEX IF EXISTS conversations_recent_idx;  -- in schema version 3 for a day; see above

CREATE TABLE IF NOT EXISTS schema_version (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
-- Once, when conversations arrive: one row per pair that has messages, everything before
-- counted as read (a user's old messages are not news).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 3) THEN
        INSERT INTO conversations (user_id, peer_id, last_seq, read_seq)
        SELECT user_id, peer_id, max(seq), max(seq) FROM (
            SELECT sender_id AS user_id, receiver_id AS peer_id, seq FROM messages
            UNION ALL
            SELECT receiver_id, sender_id, seq FROM messages
        ) pairs
        WHERE user_id IS NOT NULL AND peer_id IS NOT NULL
        GROUP BY user_id, peer_id
        ON CONFLICT (user_id, peer_id) DO UPDATE SET last_seq = greatest(conversations.last_seq, excluded.last_seq);
    END IF;
END $$;

-- Presence: when a user's last socket went (written in batches, not per connect).
ALTER TABLE users ADD COLUMN IF NOT EXISTS last_seen timestamptz;

-- Read receipts in the stream: each row also holds how far the peer has read the user's
-- messages (the mirror of the peer's read_seq), and the place in the sequence of the last
-- receipt either way. A resume or sync reads a user's receipts since a cursor from the user's
-- rows (a range of the primary key, one row per person they talk to). Not indexed, so that a
-- receipt's two row updates are HOT like a message's; with an index on (user_id, receipt_seq)
-- no difference was measurable at 800 receipts/s, so the table keeps the one index it needs.
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS peer_read_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS receipt_seq bigint;
DROP INDEX IF EXISTS conversations_receipts_idx;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 5) THEN
        UPDATE conversations c SET peer_read_seq = o.read_seq
        FROM conversations o WHERE o.user_id = c.peer_id AND o.peer_id = c.user_id AND c.peer_read_seq <> o.read_seq;
    END IF;
END $$;

-- Unread counts kept with the watermark: each message adds to its receiver's row, each receipt
-- recounts what is left after it (at most 999 rows of the conversation index). The list then
-- reads no message to count: on 10 million messages, counting 20 conversations' unread
-- messages per page cost a p99 of 24 ms. Counted once here for rows from before.
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS unread integer NOT NULL DEFAULT 0;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 6) THEN
        UPDATE conversations c SET unread = u.n
        FROM (SELECT c2.user_id, c2.peer_id, count(*) AS n
              FROM conversations c2 JOIN messages m ON m.receiver_id = c2.user_id AND m.sender_id = c2.peer_id AND m.seq > c2.read_seq
              WHERE c2.user_id <> c2.peer_id AND c2.read_seq < c2.last_seq
              GROUP BY c2.user_id, c2.peer_id) u
        WHERE c.user_id = u.user_id AND c.peer_id = u.peer_id;
    END IF;
END $$;

-- Revocable tokens: a token is valid while its `gen` claim (0 for tokens without one, such as
-- the Node server's) is at least the user's generation. A logout or a password change moves
-- the generation on, so every token issued before it is refused.
ALTER TABLE users ADD COLUMN IF NOT EXISTS token_generation integer NOT NULL DEFAULT 0;

-- Blocking: the blocker receives nothing from the blocked user (their messages are refused),
-- and the blocked user sees neither the blocker's typing nor their presence. Read whole at
-- start-up (a few rows per user who blocks anyone) and kept in memory.
CREATE TABLE IF NOT EXISTS blocks (
    blocker_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blocked_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id)
);

-- Several processes on one database (README, Several processes): every write that takes
-- places in the sequence (a batch of messages and receipts) first locks this one row, takes
-- its places, moves `last_seq` to the last of them and sends one NOTIFY, all in one
-- transaction. So places are taken and committed in order: once a batch that ends at `last_seq`
-- is seen committed, every place up to it is committed or will never be — a process that
-- hears of it can read the range and deliver it without waiting on gaps. The lock costs a
-- batch nothing while one process writes (it is the only one in line).
CREATE TABLE IF NOT EXISTS stream_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_seq bigint NOT NULL
);
INSERT INTO stream_head (last_seq)
SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM messages_seq_seq
ON CONFLICT (only_row) DO NOTHING;

-- A process reads the batches other processes committed by their range of places. Indexed on
-- the expression `seq + 0`, which only that read names: an index on seq itself would also
-- be offered to the per-user reads ordered by seq, whose custom plans then walked every
-- message backwards to find one user's newest (see above).
CREATE INDEX IF NOT EXISTS messages_stream_range_idx ON messages ((seq + 0));
-- And the receipts of that range (only a receipt's own update changes receipt_seq, so a
-- message's update of the row stays HOT).
CREATE INDEX IF NOT EXISTS conversations_receipt_seq_idx ON conversations (receipt_seq) WHERE receipt_seq IS NOT NULL;

INSERT INTO schema_version (version) VALUES (1), (2), (3), (4), (5), (6), (7), (8) ON CONFLICT (version) DO NOTHING;

COMMIT;
