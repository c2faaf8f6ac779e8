# The two commands (see README.md). Both install what is missing, build, and bring up a
# private PostgreSQL when no database is configured.
.PHONY: run test build

run:
	@scripts/run.sh

test:
	@scripts/test.sh

build:
	swift build -c release
