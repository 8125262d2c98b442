# Sourced by scripts/test.sh and the benchmarks: brings up what the tests need on this machine.
#   - .venv: a Python virtualenv with tests/requirements.txt, pinned (DuckDB, moto, osmem-server);
#   - PostgreSQL and MariaDB on 127.0.0.1, started when they are down.
# It exports REHYDRATE_TEST_PYTHON, REHYDRATE_TEST_PG and REHYDRATE_TEST_MYSQL.
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

