#!/usr/bin/env bash
# The test command. On a fresh machine it installs what the tests need into git-ignored folders
# of the repo, then runs every test:
#   - .venv: a Python virtualenv with tests/requirements.txt, pinned: DuckDB (the independent
#     engine filter results are compared with) and moto (EventBridge, Lambda, SQS emulators);
#   - PostgreSQL and MariaDB on 127.0.0.1 (Debian packages on this machine kind): started here
#     when they are down; each test creates a database of its own and drops it afterwards;
#   - the Rust unit and integration tests (cargo nextest when installed, else cargo test).
# The AWS emulators (moto, the fault proxy) are started by the tests themselves, one per test on
# a free loopback port, and stopped when the test ends (tests/common/servers.rs).
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

# PostgreSQL (trust auth on 127.0.0.1:5432) and MariaDB (root, no password, 127.0.0.1:3306).
wait_for() { # what, command…
    local what=$1; shift
    for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
    echo "test.sh: $what did not come up within 60 s" >&2; return 1
}
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    command -v pg_ctlcluster >/dev/null || { echo "test.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
    echo "test.sh: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
fi
if ! mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
    [ -x /usr/sbin/mariadbd ] || { echo "test.sh: MariaDB is not installed (apt-get install mariadb-server)" >&2; exit 1; }
    echo "test.sh: starting MariaDB" >&2
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for MariaDB mariadb-admin -h 127.0.0.1 -u root ping
fi
export REHYDRATE_TEST_PG="postgres://postgres@127.0.0.1:5432"
export REHYDRATE_TEST_MYSQL="mysql://root@127.0.0.1:3306"

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast "$@"
else
    cargo test --no-fail-fast "$@"
fi
