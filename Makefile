# The two commands (see README.md). Both install what is missing, build, and bring up a
# private PostgreSQL when no database is configured.
.PHONY: run test build conformance chat-a chat-b bench fuzz sanitize cluster

run:
	@scripts/run.sh

test:
	@scripts/test.sh

build:
	swift build -c release

# Several server processes on one database behind nginx (PROCESSES=3, PORT=5001); see README
# "Several processes".
cluster:
	@scripts/cluster.sh

# The Autobahn WebSocket suite alone (make test runs it too).
conformance:
	@scripts/conformance.sh

# The two terminal clients (demo users A and B); see README "Chatting from two terminals".
chat-a:
	@scripts/chat.sh a $(CHAT_ARGS)

chat-b:
	@scripts/chat.sh b $(CHAT_ARGS)

# Performance figures (see README "Performance").
bench:
	@scripts/bench.sh

# Every test under ThreadSanitizer, then AddressSanitizer (see README "Tests").
sanitize:
	@scripts/sanitize.sh

# The libFuzzer targets, FUZZ_SECONDS each (default 60; FUZZ_RUNS=N for a count instead); see
# docs/fuzzing.md. `make fuzz FUZZ_TARGETS="FuzzJSON FuzzJWT"` runs only those.
fuzz:
	@scripts/fuzz.sh $(FUZZ_TARGETS)
