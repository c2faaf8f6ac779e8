#!/usr/bin/env bash
# make bench: builds in release, starts a throw-away (durable, fsync on) PostgreSQL and the
# server, and runs chat-bench: saturation (closed loop), a steady 2,500 msg/s (open loop),
# both again with connection state recovery on every connection, the same steady rate with 8
# clients logging in without pause (bcrypt-bound), those logins alone (the chat quiet), the
# logins and the chat during a password-guessing storm at one account and at many (4
# guessers, each from its own 127.0.0.x), 10,000 idle connections, the reconnect
# storm (10,000 recovering sockets drop at once and resume while 2,500 msg/s flow to them),
# a steady 2,500 msg/s for 60 s right after a burst of a million messages (while PostgreSQL
# checkpoints and vacuums what the burst wrote), and overload (twice the measured saturation for 60 s, then 2,500 msg/s to show the
# recovery), checking that every acknowledged message was stored; and the fan-out between
# server processes: 1, 2 and 3 processes on one database behind nginx, each message crossing
# from its sender's process to its receiver's (`processes`); and PostgreSQL alone taking the
# server's write transaction from pgbench, by batch size and with idle servers listening
# (`database`, the figures of docs/scaling.md). First, what one log line and one metrics
# update cost (`costs`).
#
#   BENCH_LOG_LEVEL  the server's LOG_LEVEL (default info, as shipped)
#   BENCH_PHASES   which phases (default "costs saturation saturation-recovery saturation-receipts steady
#                  steady-recovery steady-receipts typing logins logins-quiet guess-one guess-many
#                  idle processes database storm catch-up conversations overload")
#   BENCH_CONVERSATION_MESSAGES   messages written for the conversations phase (default 10,000,000)
#   BENCH_ARGS     extra chat-bench options for every phase
#   NODE_ORIGINAL  a checkout of the Node original (GitHub ArkTulips/Chat-App, node_modules
#                  included; never committed here): it then runs on its own database of the
#                  same cluster, through the same phases (overload aside), and a side-by-side
#                  table ends the run.
# Every phase is bounded and stops by itself; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
ensure_packages
ensure_swift
bin=$(swift build -c release --show-bin-path)
# One product per call: given several --product options, swift build builds only the last.
for product in ChatServer chat-bench; do
    output=$(swift build -c release --product "$product" 2>&1) || { echo "$output" >&2; echo "building $product failed" >&2; exit 1; }
done
phases=${BENCH_PHASES:-costs saturation saturation-recovery saturation-receipts steady steady-recovery steady-receipts typing logins logins-quiet guess-one guess-many idle processes database storm catch-up conversations overload}
# The processes phase puts nginx in front of the servers.
[[ " $phases " != *" processes "* ]] || { ensure_packages nginx; command -v nginx > /dev/null || PATH=$PATH:/usr/sbin; }

if [ -n "${NODE_ORIGINAL:-}" ]; then
    [ -f "$NODE_ORIGINAL/index.js" ] && [ -d "$NODE_ORIGINAL/node_modules" ] ||
        { echo "NODE_ORIGINAL=$NODE_ORIGINAL is not a checkout of the Node original with its node_modules" >&2; exit 2; }
    command -v node >/dev/null || { echo "NODE_ORIGINAL needs node on PATH" >&2; exit 2; }
fi

cluster=$(pwd)/.pgbench
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$(pwd)" 2>/dev/null; then cluster=$(mktemp -d /tmp/chat-pgbench.XXXXXX); fi
scratch=$(mktemp -d /tmp/chat-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
    scripts/pg-cluster.sh stop "$cluster" || true
    rm -rf "$cluster" "$scratch"
}
trap cleanup EXIT
rm -rf "$cluster"
# A durable cluster (fsync on), as in production: the figures include real commits.
start_cluster "$cluster"
"$bin/ChatServer" migrate schema.sql > /dev/null

# bench NAME PHASE PORT PID [chat-bench options…]: one phase, shown as it runs; its summary
# line is kept, tagged with the phase, for the table at the end.
bench() {
    local name=$1 phase=$2 port=$3 pid=$4; shift 4
    "$bin/chat-bench" --server "http://127.0.0.1:$port" --pid "$pid" --users-file "$scratch/users-$name" "$@" ${BENCH_ARGS:-} |
        sed -u "s/^summary:/summary-$phase:/" | tee -a "$scratch/out-$name" | grep -v '^summary'
}
# figure NAME PHASE KEY: a value from a phase's summary ("—" when that phase did not run).
figure() { grep -h "^summary-$2:" "$scratch/out-$1" 2>/dev/null | grep -o " $3=[0-9.]*" | tail -n 1 | cut -d= -f2 | grep . || echo "—"; }
message_rows() { psql "$1" -Atqc 'SELECT count(*) FROM messages'; }

# run_phases NAME PORT PID DATABASE_URL PHASES
run_phases() {
    local name=$1 port=$2 pid=$3 database=$4 phase
    [ -n "${5// /}" ] || return 0
    grep -q '^summary-fresh:' "$scratch/out-$name" 2>/dev/null || {
        echo "idle server RSS: $(awk '/VmRSS/ {print $2}' /proc/$pid/status) KiB"
        echo "summary-fresh: idle_rss_kib=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)" >> "$scratch/out-$name"
    }
    # Each server starts from a checkpointed cluster, not with the previous one's dirty pages.
    psql "$database" -qc CHECKPOINT
    for phase in $5; do
        case $phase in
        saturation)
            echo "== $name: saturation, 200 users, 8 in flight each"
            bench "$name" saturation "$port" "$pid" --users 200 --window 8 --seconds 10 ;;
        saturation-recovery)
            [ "$name" = ours ] || continue
            echo "== $name: saturation, 200 users, 8 in flight each, connection state recovery on every connection"
            bench "$name" saturation-recovery "$port" "$pid" --users 200 --window 8 --seconds 10 --recover ;;
        saturation-receipts)
            [ "$name" = ours ] || continue
            echo "== $name: saturation, 200 users, 8 in flight each, every user marking read what arrived every 300 ms"
            bench "$name" saturation-receipts "$port" "$pid" --users 200 --window 8 --seconds 10 --read-receipts 300 ;;
        steady-receipts)
            [ "$name" = ours ] || continue
            echo "== $name: steady 2,500 msg/s, every user marking read what arrived every 300 ms"
            bench "$name" steady-receipts "$port" "$pid" --users 200 --rate 2500 --seconds 10 --read-receipts 300 ;;
        steady)
            echo "== $name: steady 2,500 msg/s"
            bench "$name" steady "$port" "$pid" --users 200 --rate 2500 --seconds 10 ;;
        typing)
            [ "$name" = ours ] || continue
            echo "== $name: steady 2,500 msg/s in a typing storm (every user typing: 800 typing events/s)"
            bench "$name" typing "$port" "$pid" --users 200 --rate 2500 --seconds 10 --typing-rate 800 ;;
        steady-recovery)
            [ "$name" = ours ] || continue
            echo "== $name: steady 2,500 msg/s, connection state recovery on every connection"
            bench "$name" steady-recovery "$port" "$pid" --users 200 --rate 2500 --seconds 10 --recover ;;
        conversations)
            [ "$name" = ours ] || continue
            local conversation_messages=${BENCH_CONVERSATION_MESSAGES:-10000000}
            echo "== $name: GET /api/conversations for a user with 10,000 conversations on a table of $conversation_messages more messages"
            # Written straight into the tables (the message path is measured elsewhere): 10,000
            # peers, 100 messages between the user and each (50 unread), and the rest between the
            # peers, each with the next few, 100 a pair. Ids grow with the insert, as the
            # server's time-ordered ids do.
            owner=$(psql "$database" -Atqc "INSERT INTO users (username, email, password) VALUES ('many', 'many-' || md5(random()::text) || '@bench.chat', '!') RETURNING id")
            local started=$SECONDS
            psql "$database" -q <<SQL
CREATE TEMP TABLE peers AS WITH p AS (INSERT INTO users (username, email, password)
    SELECT 'peer ' || n, 'peer-' || n || '-' || md5(random()::text) || '@bench.chat', '!' FROM generate_series(1, 10000) n RETURNING id)
    SELECT id, (row_number() OVER ())::int AS n FROM p;
CREATE TEMP SEQUENCE bench_ids;
INSERT INTO messages (id, sender_id, receiver_id, content)
    SELECT ('b' || lpad(to_hex(nextval('bench_ids')), 31, '0'))::uuid,
           CASE WHEN k % 2 = 0 THEN p.id ELSE '$owner'::uuid END, CASE WHEN k % 2 = 0 THEN '$owner'::uuid ELSE p.id END, 'message ' || k
    FROM generate_series(1, 100) k, peers p ORDER BY k, p.id;
INSERT INTO conversations (user_id, peer_id, last_seq, read_seq, unread)
    SELECT '$owner'::uuid, m.peer, max(m.seq), 0, 50 FROM (SELECT CASE WHEN sender_id = '$owner'::uuid THEN receiver_id ELSE sender_id END AS peer, seq
                                                      FROM messages WHERE sender_id = '$owner'::uuid OR receiver_id = '$owner'::uuid) m GROUP BY m.peer;
-- The peers among themselves: peer n with peers n+1 … n+d (d pairs each), 100 messages a pair.
CREATE TEMP TABLE pairs AS
    SELECT a.id AS a, b.id AS b FROM peers a, generate_series(1, greatest(0, ($conversation_messages - 1000000) / 1000000)) d
    JOIN peers b ON true WHERE b.n = (a.n + d - 1) % 10000 + 1;
INSERT INTO messages (id, sender_id, receiver_id, content)
    SELECT ('b' || lpad(to_hex(nextval('bench_ids')), 31, '0'))::uuid,
           CASE WHEN k % 2 = 0 THEN a ELSE b END, CASE WHEN k % 2 = 0 THEN b ELSE a END, 'message ' || k
    FROM generate_series(1, 100) k, pairs ORDER BY k;
CREATE TEMP TABLE pair_last AS
    SELECT least(sender_id, receiver_id) AS x, greatest(sender_id, receiver_id) AS y, max(seq) AS last_seq FROM messages
    WHERE seq > (SELECT max(last_seq) FROM conversations WHERE user_id = '$owner'::uuid) GROUP BY 1, 2;
INSERT INTO conversations (user_id, peer_id, last_seq, read_seq)
    SELECT x, y, last_seq, last_seq FROM pair_last UNION ALL SELECT y, x, last_seq, last_seq FROM pair_last;
VACUUM ANALYZE messages;
VACUUM ANALYZE conversations;
-- The load's dirty pages written now, not during the requests measured.
CHECKPOINT;
SQL
            local rows
            rows=$(psql "$database" -Atqc 'SELECT count(*) FROM messages')
            echo "($rows messages in the table, written in $(( SECONDS - started )) s)"
            echo "summary-conversations-table: messages=$rows" >> "$scratch/out-$name"
            bench "$name" conversations "$port" "$pid" --users 2 --conversations-probe 1000 --probe-user "$owner" --jwt-secret bench-secret ;;
        storm)
            [ "$name" = ours ] || continue
            echo "== $name: reconnect storm, 10,000 recovering sockets drop at once and resume while 2,500 msg/s flow to them"
            # Receivers straight into the table (a registration is a bcrypt hash); their tokens
            # are signed by the bench with the server's secret.
            psql "$database" -Atqc "INSERT INTO users (username, email, password)
                SELECT 'storm ' || n, 'storm-' || n || '-' || md5(random()::text) || '@bench.chat', '!' FROM generate_series(1, 10000) n
                RETURNING id" > "$scratch/storm-users"
            bench "$name" storm "$port" "$pid" --users 200 --rate 2500 --storm 10000 --storm-users "$scratch/storm-users" --jwt-secret bench-secret ;;
        logins)
            echo "== $name: steady 2,500 msg/s while 8 clients log in without pause"
            bench "$name" logins "$port" "$pid" --users 200 --rate 2500 --seconds 10 --logins 8 ;;
        logins-quiet)
            echo "== $name: 8 clients log in without pause, no chat"
            bench "$name" logins-quiet "$port" "$pid" --users 200 --window 0 --seconds 10 --logins 8 ;;
        guess-one|guess-many)
            [ "$name" = ours ] || continue
            echo "== $name: steady 2,500 msg/s, 8 clients log in, and 4 guessers (each its own 127.0.0.x) post wrong passwords at ${phase#guess-} account(s)"
            bench "$name" "$phase" "$port" "$pid" --users 200 --rate 2500 --seconds 10 --logins 8 --guessers 4 --guess-accounts "${phase#guess-}" ;;
        catch-up)
            [ "$name" = ours ] || continue
            # A million messages through the server as fast as it takes them, then the steady
            # rate at once: its latency while PostgreSQL writes the burst's pages out
            # (checkpoint) and autovacuum visits the grown table. A line per second shows when.
            local rate burst_seconds checkpoints_before vacuums_before
            rate=$(figure "$name" saturation persisted_per_s | cut -d. -f1)
            [ "$rate" = "—" ] && rate=35000
            burst_seconds=$(( 1000000 / rate + 1 ))
            psql "$database" -qc CHECKPOINT
            checkpoints_before=$(psql "$database" -Atqc "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
            vacuums_before=$(psql "$database" -Atqc "SELECT autovacuum_count + autoanalyze_count FROM pg_stat_user_tables WHERE relname = 'messages'")
            echo "== $name: a burst of about a million messages (saturation for $burst_seconds s), then 2,500 msg/s for 60 s"
            bench "$name" burst "$port" "$pid" --users 200 --window 8 --seconds "$burst_seconds" --warmup 0 | grep -E '^persisted|^whole run'
            bench "$name" catch-up "$port" "$pid" --users 200 --rate 2500 --seconds 60 --warmup 0 --timeline
            echo "catch-up: checkpoints during the burst and after: $(( $(psql "$database" -Atqc "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter") - checkpoints_before )), autovacuum/autoanalyze runs on messages: $(( $(psql "$database" -Atqc "SELECT autovacuum_count + autoanalyze_count FROM pg_stat_user_tables WHERE relname = 'messages'") - vacuums_before ))" ;;
        processes)
            [ "$name" = ours ] || continue
            processes_phase "$database" ;;
        database)
            [ "$name" = ours ] || continue
            database_phase "$database" ;;
        costs)
            [ "$name" = ours ] || continue
            echo "== what one log line and one metrics update cost (chat-bench --costs, one thread)"
            "$bin/chat-bench" --costs ;;
        idle)
            echo "== $name: 10,000 idle Socket.IO connections"
            bench "$name" idle "$port" "$pid" --users 2 --rate 10 --seconds 1 --warmup 0.5 --idle 10000 | grep idle ;;
        overload)
            [ "$name" = ours ] || continue
            local saturation rate before after acknowledged
            saturation=$(figure "$name" saturation persisted_per_s | cut -d. -f1)
            [ "$saturation" = "—" ] && saturation=60000
            rate=$(( saturation * 2 ))
            echo "== $name: overload, $rate msg/s offered (twice saturation) for 60 s, then 2,500 msg/s for 10 s"
            before=$(message_rows "$database")
            bench "$name" overload "$port" "$pid" --users 200 --rate "$rate" --seconds 60 --warmup 1 --then-rate 2500 --then-seconds 10 --timeline
            after=$(message_rows "$database")
            acknowledged=$(figure "$name" overload acknowledged)
            if [ "$acknowledged" = $(( after - before )) ]; then
                echo "overload: every acknowledged message is stored ($acknowledged acknowledged, $(( after - before )) rows added)"
            else
                echo "overload: MISMATCH: $acknowledged acknowledged, $(( after - before )) rows added"
            fi ;;
        *) echo "unknown phase $phase" >&2; exit 2 ;;
        esac
    done
}

# The servers of the processes phase: started by start_processes, stopped by stop_processes.
process_pids=() process_ports=() nginx_pids=()
# start_processes DATABASE COUNT: COUNT servers on DATABASE, named n1…nCOUNT, each trusting
# nginx's X-Forwarded-For; returns when every one answers.
start_processes() {
    local database=$1 count=$2 n port
    for n in $(seq "$count"); do
        port=$(free_port)
        DATABASE_URL=$database JWT_SECRET=bench-secret PORT=$port HOST=127.0.0.1 ENV_FILE=/nonexistent LOG_LEVEL=${BENCH_LOG_LEVEL:-info} INSTANCE_ID=n$n \
            TRUSTED_PROXIES=127.0.0.1 REGISTRATIONS_PER_ADDRESS_PER_HOUR=100000000 MESSAGE_BURST=100000000 MESSAGES_PER_SECOND=100000000 \
            SOCKETS_PER_USER=0 CONNECTIONS_PER_ADDRESS=100000000 NEW_CONNECTIONS_PER_ADDRESS_PER_SECOND=10000000 \
            "$bin/ChatServer" serve > "$scratch/server-n$n.log" 2>&1 &
        process_pids+=($!) process_ports+=("$port")
        pids+=($!)
    done
    for port in "${process_ports[@]}"; do wait_for_port "$port"; done
}
# start_nginx NAME BACKEND_PORT…: an nginx made by scripts/cluster.sh nginx-config (the
# committed configuration's generator) in front of those servers, listening on $nginx_port.
# (Not called in a subshell: its pid must reach nginx_pids, for stop_processes.)
nginx_port=""
start_nginx() {
    local name=$1 prefix backends=()
    shift
    nginx_port=$(free_port) prefix="$scratch/nginx-$name"
    mkdir -p "$prefix"
    chmod 711 "$scratch"; chmod 755 "$prefix"
    for backend in "$@"; do backends+=("127.0.0.1:$backend"); done
    scripts/cluster.sh nginx-config "127.0.0.1:$nginx_port" "$prefix" "${backends[@]}" > "$prefix/nginx.conf"
    nginx -p "$prefix" -c "$prefix/nginx.conf" > "$prefix/out.log" 2>&1 &
    nginx_pids+=($!)
    pids+=($!)
    wait_for_port "$nginx_port"
}
stop_processes() {
    local pid stopped=" ${nginx_pids[*]} ${process_pids[*]} " kept=()
    for pid in "${nginx_pids[@]}" "${process_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${nginx_pids[@]}" "${process_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    # Out of cleanup's list too: their pids may be another process's by the end.
    for pid in "${pids[@]}"; do [[ "$stopped" == *" $pid "* ]] || kept+=("$pid"); done
    pids=("${kept[@]}")
    process_pids=() process_ports=() nginx_pids=()
}
wait_for_port() {
    local tries
    for tries in $(seq 100); do
        (exec 3<> "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing answers on port $1" >&2
    exit 1
}

# processes_bench LABEL DATABASE URLS [chat-bench options…]: one run of the processes phase
# with the load's connections spread over URLS: its summary line and the stream channel's
# notifications per second and per message. Every write transaction that stores messages sends
# exactly one (PostgresChatStore.write) and its messages share created_at (now() is the
# transaction's start), so they are counted in the table afterwards — a LISTENing client would
# add a backend for every notification to wake.
processes_bench() {
    local label=$1 database=$2 urls=$3 head started seconds
    shift 3
    head=$(psql "$database" -Atqc "SELECT last_seq FROM stream_head")
    started=$(date +%s.%N)
    "$bin/chat-bench" --server "${urls%%,*}" --servers "$urls" --users-file "$scratch/users-processes" "$@" ${BENCH_ARGS:-} |
        sed -u "s/^summary:/summary-processes-$label:/" | tee -a "$scratch/out-ours" | { grep -v "^summary" || true; }
    seconds=$(python3 -c "print(max(0.001, $(date +%s.%N) - $started))")
    local line
    line=$(psql "$database" -Atqc "SELECT 'notifications_per_s=' || round(count(DISTINCT created_at) / $seconds) ||
                                          ' notifications_per_message=' || round(count(DISTINCT created_at)::numeric / greatest(1, count(*)), 3)
                                   FROM messages WHERE seq > $head")
    echo "stream notifications: $line (the whole run, warm-up included)"
    echo "summary-processes-$label-notify: $line" >> "$scratch/out-ours"
}

# The database phase (docs/scaling.md): PostgreSQL alone, taking the server's write
# transaction (PostgresChatStore.write: the head locked, a batch of messages inserted with its
# conversations kept, the head moved and the span announced — one pipelined transaction) from
# pgbench, 2 clients, for batch sizes 1 to 1,000: transactions/s, rows/s, WAL bytes per row.
# Then batches of 10 with 0, 2 and 8 idle servers on the database, each listening and reading
# every span (what each further process costs the database). A database of its own.
database_phase() {
    # (Not `cluster`: that global names the throw-away cluster's folder for cleanup.)
    local server=${1%/*} database batch listeners pgbench line before_lsn rows_before rows_after tps
    database="$server/chat_capacity"
    pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | sort -V | tail -n 1)
    psql "$server/postgres" -q -c 'SET client_min_messages = warning' -c 'DROP DATABASE IF EXISTS chat_capacity' -c 'CREATE DATABASE chat_capacity'
    DATABASE_URL=$database "$bin/ChatServer" migrate schema.sql > /dev/null
    # 200 users, 100 pairs; a batch's messages go to consecutive pairs, as a busy server's do.
    psql "$database" -q -c "INSERT INTO users (username, email, password)
                                SELECT 'capacity ' || n, 'capacity-' || lpad(n::text, 3, '0') || '@bench.chat', '!' FROM generate_series(1, 200) n" \
                        -c "CREATE TABLE capacity_users AS SELECT row_number() OVER (ORDER BY email) - 1 AS k, id FROM users WHERE email LIKE 'capacity-%'"
    cat > "$scratch/write.sql" <<'SQL'
\set base random(0, 99)
\startpipeline
BEGIN;
SELECT last_seq FROM stream_head FOR UPDATE;
WITH i AS (
    SELECT gen_random_uuid() AS id, s.id AS sender_id, r.id AS receiver_id, 'a chat message of some fifty bytes, as most of them' AS content, n
    FROM generate_series(1, :batch) n JOIN capacity_users s ON s.k = (:base + n) % 100 JOIN capacity_users r ON r.k = (:base + n) % 100 + 100
), inserted AS (
    INSERT INTO messages (id, sender_id, receiver_id, content)
    SELECT i.id, i.sender_id, i.receiver_id, i.content FROM i JOIN users u ON u.id = i.receiver_id ORDER BY i.n
    RETURNING id, sender_id, receiver_id, created_at, seq
), kept AS (
    INSERT INTO conversations (user_id, peer_id, last_seq, unread)
    SELECT user_id, peer_id, max(seq), count(*) FILTER (WHERE incoming) FROM (
        SELECT sender_id AS user_id, receiver_id AS peer_id, seq, false AS incoming FROM inserted
        UNION ALL
        SELECT receiver_id, sender_id, seq, true FROM inserted WHERE receiver_id <> sender_id
    ) pairs GROUP BY user_id, peer_id ORDER BY user_id, peer_id
    ON CONFLICT (user_id, peer_id) DO UPDATE
        SET last_seq = greatest(conversations.last_seq, excluded.last_seq), unread = conversations.unread + excluded.unread
)
SELECT id::text AS id, created_at::text AS created_at, seq::text AS seq FROM inserted;
WITH before AS (SELECT last_seq FROM stream_head),
taken AS (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END AS last FROM messages_seq_seq),
moved AS (UPDATE stream_head SET last_seq = (SELECT last FROM taken) WHERE (SELECT last FROM taken) > last_seq RETURNING last_seq)
SELECT b.last_seq::text AS after, coalesce(m.last_seq, b.last_seq)::text AS through,
       CASE WHEN m.last_seq IS NOT NULL THEN pg_notify('chat_stream', b.last_seq::text || ' ' || m.last_seq::text || ' capacity') END::text
FROM before b LEFT JOIN moved m ON true;
COMMIT;
\endpipeline
SQL
    # The control: the same transaction without the head — no lock, no head row moved, the
    # notification still sent — to tell what the lock costs from what the commits do.
    awk '/FOR UPDATE/ { next }
         /^WITH before AS/ { skipping = 1; print "SELECT pg_notify('"'"'chat_stream'"'"', '"'"'control'"'"');" }
         skipping { if (/LEFT JOIN moved m ON true;/) skipping = 0; next }
         { print }' "$scratch/write.sql" > "$scratch/write-without-head.sql"
    # capacity_run LABEL BATCH [CLIENTS] [SCRIPT]: 10 s of pgbench (2 clients, write.sql unless
    # told); a line and a summary for the table.
    capacity_run() {
        local label=$1 batch=$2 clients=${3:-2} script=${4:-$scratch/write.sql} out
        before_lsn=$(psql "$database" -Atqc "SELECT pg_current_wal_lsn()") rows_before=$(message_rows "$database")
        out=$("$pgbench" -n -M prepared -c "$clients" -j "$clients" -T 10 -D batch="$batch" -f "$script" "$database" 2>&1) || { echo "$out" >&2; return 1; }
        rows_after=$(message_rows "$database")
        tps=$(grep -oE '^tps = [0-9.]+' <<< "$out" | grep -oE '[0-9.]+$')
        line=$(psql "$database" -Atqc "SELECT 'transactions_per_s=' || round($tps) || ' rows_per_s=' || round($tps * $batch) ||
            ' latency_ms=' || $(grep -oE '^latency average = [0-9.]+' <<< "$out" | grep -oE '[0-9.]+$') ||
            ' wal_bytes_per_row=' || round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$before_lsn') / greatest(1, $rows_after - $rows_before))")
        echo "$label: $line"
        echo "summary-database-$label: $line" >> "$scratch/out-ours"
    }
    echo "== PostgreSQL alone: the server's write transaction from pgbench (2 clients, 10 s each)"
    # One client: the head lock never changes hands (one process's writer).
    capacity_run "batch-1-one-writer" 1 1
    capacity_run "batch-1-no-head-lock" 1 2 "$scratch/write-without-head.sql"
    for batch in 1 10 100 1000; do capacity_run "batch-$batch" "$batch"; done
    echo "== the same, batches of 10, with idle servers on the database (each reads every span)"
    for listeners in 2 8; do
        start_processes "$database" "$listeners"
        capacity_run "listeners-$listeners" 10
        stop_processes
    done
    line=$(psql "$database" -Atqc "SELECT 'table_bytes_per_message=' || round(pg_table_size('messages') / count(*)::numeric) ||
        ' index_bytes_per_message=' || round(pg_indexes_size('messages') / count(*)::numeric) FROM messages")
    echo "messages on disk: $line"
    echo "summary-database-size: $line" >> "$scratch/out-ours"
}

# The processes phase (README, Several processes): 1, 2 and 3 servers on one database — one of
# their own, so that the main server hears none of their notifications — each behind an nginx
# of its own, the bench putting every pair's two users on different processes (--servers), so
# that every message crosses; then 3 servers behind one nginx that balances them (least_conn:
# where a user lands is nginx's choice, two thirds of the messages cross). Each: saturation and
# a steady 2,500 msg/s.
processes_phase() {
    local server=${1%/*} database count label urls port
    database="$server/chat_processes"
    psql "$server/postgres" -q -c 'SET client_min_messages = warning' -c 'DROP DATABASE IF EXISTS chat_processes' -c 'CREATE DATABASE chat_processes'
    DATABASE_URL=$database "$bin/ChatServer" migrate schema.sql > /dev/null
    rm -f "$scratch/users-processes"  # registered in the database just dropped, if any
    for count in 1 2 3 balanced; do
        if [ "$count" = balanced ]; then
            start_processes "$database" 3
            start_nginx balanced "${process_ports[@]}"
            urls="http://127.0.0.1:$nginx_port"
            label=3-balanced
            echo "== ours: 3 processes behind one nginx that balances them"
        else
            start_processes "$database" "$count"
            urls=""
            for port in "${process_ports[@]}"; do
                start_nginx "n$port" "$port"
                urls="$urls${urls:+,}http://127.0.0.1:$nginx_port"
            done
            label=$count
            if [ "$count" = 1 ]; then
                echo "== ours: 1 process behind nginx (the baseline: nothing crosses)"
            else
                echo "== ours: $count processes, each behind nginx, every message crossing from its sender's process to its receiver's"
            fi
        fi
        psql "$database" -qc CHECKPOINT
        processes_bench "$label-saturation" "$database" "$urls" --users 200 --window 8 --seconds 10
        processes_bench "$label-steady" "$database" "$urls" --users 200 --rate 2500 --seconds 10
        stop_processes
    done
}

port=$(free_port)
# The bench registers its hundreds of users from one address: the registration limit per
# address is raised for it. Its saturation phases send a few hundred messages a second per
# user, past the default limit of 50: that limit is raised (still checked for every message,
# so its cost is in the figures). Every other limit is as shipped; the steady phases (12.5
# messages a second per user) are within them. Its 10,000 idle and storm connections all come
# from 127.0.0.1, 50 per user: the connection caps per address and per user are raised too.
# It logs as an operator's server does (info: a line per request and per connection, to a
# file here), and /metrics is on, as always.
JWT_SECRET=bench-secret PORT=$port HOST=127.0.0.1 ENV_FILE=/nonexistent LOG_LEVEL=${BENCH_LOG_LEVEL:-info} REGISTRATIONS_PER_ADDRESS_PER_HOUR=100000000 \
    MESSAGE_BURST=100000000 MESSAGES_PER_SECOND=100000000 SOCKETS_PER_USER=0 CONNECTIONS_PER_ADDRESS=100000000 \
    NEW_CONNECTIONS_PER_ADDRESS_PER_SECOND=10000000 "$bin/ChatServer" serve 2>> "$scratch/server.log" &
ours=$!
pids+=("$ours")
sleep 1
run_phases ours "$port" "$ours" "$DATABASE_URL" "${phases/overload/}"

if [ -n "${NODE_ORIGINAL:-}" ]; then
    # The Node original on its own database of the same cluster, with the tables its code
    # expects (CONTRACT.md Part 1) — configured through the environment, run from an empty
    # folder so no .env of the checkout is read.
    node_db="${DATABASE_URL%/*}/node_original"
    psql "${DATABASE_URL%/*}/postgres" -qc 'CREATE DATABASE node_original' >/dev/null
    psql "$node_db" -q >/dev/null <<'SQL'
CREATE TABLE users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), username text, email text UNIQUE NOT NULL, password text NOT NULL);
CREATE TABLE messages (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), sender_id uuid, receiver_id uuid, content text,
                       created_at timestamp DEFAULT current_timestamp);
SQL
    credentials=${DATABASE_URL#postgres://}; credentials=${credentials%%@*}
    address=${DATABASE_URL#*@}; address=${address%%/*}
    node_port=$(free_port)
    mkdir -p "$scratch/node"
    (cd "$scratch/node" && PORT=$node_port JWT_SECRET=bench-secret DB_USER=${credentials%%:*} DB_PASSWORD=${credentials#*:} \
        DB_HOST=${address%%:*} DB_PORT=${address##*:} DB_NAME=node_original exec node "$NODE_ORIGINAL/index.js" > "$scratch/node.log" 2>&1) &
    node_pid=$!
    pids+=("$node_pid")
    sleep 2
    run_phases node "$node_port" "$node_pid" "$node_db" "${phases/overload/}"
    kill "$node_pid"; wait "$node_pid" 2>/dev/null || true
fi
# Last, as it leaves millions of rows for PostgreSQL to checkpoint and vacuum.
run_phases ours "$port" "$ours" "$DATABASE_URL" "$(echo "$phases" | grep -o overload || true)"

echo
echo "== side by side (this run)"
row() { printf '%-44s %18s %18s\n' "$1" "$2" "$3"; }
row "" "Node original" "this server"
row "persisted msg/s at saturation" "$(figure node saturation persisted_per_s)" "$(figure ours saturation persisted_per_s)"
row "ack p99 ms at saturation" "$(figure node saturation ack_p99_ms)" "$(figure ours saturation ack_p99_ms)"
row "server CPU µs per message at saturation" "$(figure node saturation server_cpu_us)" "$(figure ours saturation server_cpu_us)"
row "persisted msg/s at saturation, recovery on" "" "$(figure ours saturation-recovery persisted_per_s)"
row "persisted msg/s at saturation, receipts on" "" "$(figure ours saturation-receipts persisted_per_s)"
row "ack p99 ms at a steady 2,500 msg/s" "$(figure node steady ack_p99_ms)" "$(figure ours steady ack_p99_ms)"
row "ack p99 ms at 2,500 msg/s, receipts on" "" "$(figure ours steady-receipts ack_p99_ms)"
row "ack p99 ms at 2,500 msg/s, recovery on" "" "$(figure ours steady-recovery ack_p99_ms)"
row "ack p99 ms at 2,500 msg/s in a typing storm" "" "$(figure ours typing ack_p99_ms)"
row "logins/s (8 clients, bcrypt cost 10)" "$(figure node logins logins_per_s)" "$(figure ours logins logins_per_s)"
row "ack p99 ms at 2,500 msg/s during those logins" "$(figure node logins ack_p99_ms)" "$(figure ours logins ack_p99_ms)"
row "logins/s (8 clients), no chat" "$(figure node logins-quiet logins_per_s)" "$(figure ours logins-quiet logins_per_s)"
row "guessing one account: guesses/s answered" "" "$(figure ours guess-one guesses_per_s)"
row "  honest logins/s, ack p99 ms" "" "$(figure ours guess-one logins_per_s), $(figure ours guess-one ack_p99_ms)"
row "guessing many accounts: guesses/s answered" "" "$(figure ours guess-many guesses_per_s)"
row "  honest logins/s, ack p99 ms" "" "$(figure ours guess-many logins_per_s), $(figure ours guess-many ack_p99_ms)"
row "KiB per idle Socket.IO connection" "$(figure node idle idle_kib_per_connection)" "$(figure ours idle idle_kib_per_connection)"
row "storm: s until 10,000 sockets recovered" "" "$(figure ours storm storm_recovered_s)"
row "storm: s until every missed message arrived" "" "$(figure ours storm storm_caught_up_s)"
storm_wrong=—
[ "$(figure ours storm storm_lost)" = — ] || storm_wrong=$(( $(figure ours storm storm_lost) + $(figure ours storm storm_extra) + $(figure ours storm storm_duplicates) ))
row "storm: messages lost, extra or twice" "" "$storm_wrong"
row "storm: server peak RSS KiB" "" "$(figure ours storm storm_peak_rss_kib)"
row "ack p99 ms at 2,500 msg/s after a 1M burst" "" "$(figure ours catch-up ack_p99_ms)"
overload_stored=$(figure ours overload persisted_per_s) saturation_stored=$(figure ours saturation persisted_per_s)
overload_share=—
[[ "$overload_stored$saturation_stored" != *—* ]] && overload_share="$(( ${overload_stored%.*} * 100 / ${saturation_stored%.*} )) %"
row "overload (2× saturation): stored msg/s" "" "$overload_stored ($overload_share of saturation)"
row "  slowest sender / median sender" "" "$(figure ours overload sender_min_over_median)"
row "GET /api/conversations p99 ms, 10,000 of them" "" "$(figure ours conversations conversations_p99_ms)"
row "  on a table of this many messages" "" "$(figure ours conversations-table messages)"
row "server RSS KiB, fresh" "$(figure node fresh idle_rss_kib)" "$(figure ours fresh idle_rss_kib)"
row "bench CPU µs per message at saturation" "$(figure node saturation bench_cpu_us)" "$(figure ours saturation bench_cpu_us)"

echo
echo "== several processes on one database, behind nginx (this run; every message crosses processes but in the last column)"
prow() { printf '%-44s %12s %12s %12s %14s\n' "$@"; }
prow "" "1 process" "2 processes" "3 processes" "3, balanced"
share() {
    local base value
    base=$(figure ours processes-1-saturation persisted_per_s) value=$(figure ours "processes-$1-saturation" persisted_per_s)
    [[ "$base$value" == *—* ]] || [ "${base%.*}" -le 0 ] && { echo —; return; }
    echo "$(( ${value%.*} * 100 / ${base%.*} )) %"
}
prow "persisted msg/s at saturation" "$(figure ours processes-1-saturation persisted_per_s)" "$(figure ours processes-2-saturation persisted_per_s)" \
    "$(figure ours processes-3-saturation persisted_per_s)" "$(figure ours processes-3-balanced-saturation persisted_per_s)"
prow "  share of 1 process" "$(share 1)" "$(share 2)" "$(share 3)" "$(share 3-balanced)"
for key in ack_p50_ms ack_p99_ms e2e_p50_ms e2e_p99_ms; do
    prow "$key at 2,500 msg/s" "$(figure ours processes-1-steady $key)" "$(figure ours processes-2-steady $key)" \
        "$(figure ours processes-3-steady $key)" "$(figure ours processes-3-balanced-steady $key)"
done
for key in notifications_per_s notifications_per_message; do
    prow "$key at 2,500 msg/s" "$(figure ours processes-1-steady-notify $key)" "$(figure ours processes-2-steady-notify $key)" \
        "$(figure ours processes-3-steady-notify $key)" "$(figure ours processes-3-balanced-steady-notify $key)"
done
prow "notifications_per_message at saturation" "$(figure ours processes-1-saturation-notify notifications_per_message)" \
    "$(figure ours processes-2-saturation-notify notifications_per_message)" "$(figure ours processes-3-saturation-notify notifications_per_message)" \
    "$(figure ours processes-3-balanced-saturation-notify notifications_per_message)"
echo
echo "== PostgreSQL alone, the server's write transaction from pgbench (this run; docs/scaling.md)"
drow() { printf '%-44s %14s %12s %12s %18s\n' "$@"; }
drow "" "transactions/s" "rows/s" "latency ms" "WAL bytes per row"
for label in batch-1-one-writer batch-1-no-head-lock batch-1 batch-10 batch-100 batch-1000 listeners-2 listeners-8; do
    drow "$label" "$(figure ours "database-$label" transactions_per_s)" "$(figure ours "database-$label" rows_per_s)" \
        "$(figure ours "database-$label" latency_ms)" "$(figure ours "database-$label" wal_bytes_per_row)"
done
echo "bytes per message on disk: table $(figure ours database-size table_bytes_per_message), indexes $(figure ours database-size index_bytes_per_message)"
