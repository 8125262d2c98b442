#!/usr/bin/env bash
# The test command. On a fresh machine it installs what the tests need into git-ignored folders
# of the repo, then runs every test:
#   - .venv: a Python virtualenv with tests/requirements.txt, pinned: DuckDB (the independent
#     engine filter results are compared with) and moto (EventBridge, Lambda, SQS emulators);
#   - the Rust unit and integration tests (cargo nextest when installed, else cargo test).
# The emulators are started by the tests themselves, one per test on a free loopback port, and
# stopped when the test ends (tests/common/servers.rs).
# Extra arguments go to the test runner, e.g. scripts/test.sh duckdb
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
stamp=.venv/.requirements-installed
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] || ! cmp -s tests/requirements.txt "$stamp"; then
    echo "test.sh: setting up .venv from tests/requirements.txt" >&2
    "$python" -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
    cp tests/requirements.txt "$stamp"
fi
export REHYDRATE_TEST_PYTHON="$PWD/.venv/bin/python"

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast "$@"
else
    cargo test --no-fail-fast "$@"
fi
