#!/usr/bin/env bash
# The test command. On a fresh machine it installs what the tests need into git-ignored folders
# of the repo, then runs every test:
#   - .venv: a Python virtualenv with tests/requirements.txt, pinned: DuckDB (the independent
#     engine filter results are compared with), moto (EventBridge, Lambda, SQS, DynamoDB
#     emulators) and osmem-server (an in-memory OpenSearch-compatible server, a Go binary);
#   - PostgreSQL and MariaDB on 127.0.0.1 (Debian packages on this machine kind): started here
#     when they are down; each test creates a database of its own and drops it afterwards;
#   - the Rust unit and integration tests (cargo nextest when installed, else cargo test).
# The AWS emulators (moto, the fault proxy) are started by the tests themselves, one per test on
# a free loopback port, and stopped when the test ends (tests/common/servers.rs).
# Extra arguments go to the test runner, e.g. scripts/test.sh duckdb
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/testbed.sh

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast "$@"
else
    cargo test --no-fail-fast "$@"
fi
