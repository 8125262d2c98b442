#!/usr/bin/env bash
# Loads the same generated events into PostgreSQL, MariaDB/MySQL, DynamoDB (moto) and
# OpenSearch (osmem-server) with
# rehydrate and with a peer tool each, in one run, and prints rows/s and the ratios.
#
#   scripts/bench_populate.sh [EVENTS] [DYNAMODB_EVENTS]   (defaults 100000 and 20000)
#
# The job: one row per event (id, source, detail_type, time, detail as jsonb/JSON), upserted on
# id into a fresh table. Peers: psql \copy of the same rows as CSV (PostgreSQL's fastest bulk
# path, no upsert), mariadb LOAD DATA LOCAL INFILE (likewise), and boto3's batch_writer (the
# usual Python loader) for DynamoDB, curl posting ready-made _bulk bodies of 1000 documents two at a
# time (the server's ceiling: no conversion at all) for OpenSearch. moto is a slow, single-threaded emulator: its figures say
# where the driver stands against a peer on the same server, not what DynamoDB itself takes.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-100000}
ddb_events=${2:-20000}
data=bench-data
mkdir -p "$data"
store="$data/populate-${events}.ndjson"
[ -f "$store" ] || python3 scripts/gen_events.py --ndjson "$events" > "$store"
ddb_store="$data/populate-ddb-${ddb_events}.ndjson"
head -n "$ddb_events" "$store" > "$ddb_store"

. scripts/testbed.sh   # the virtualenv and the database servers
py=.venv/bin/python
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/rehydrate"
query="SELECT id, source, detail_type, time, detail FROM events"
export REHYDRATE_REPORT_DIR="$data/runs"

secs() { # command...: prints wall seconds
    local t0 t1
    t0=$(date +%s%N)
    "$@" > "$data/bench.out" 2> "$data/bench.err" || { echo "bench: failed: $*" >&2; tail -5 "$data/bench.err" >&2; exit 1; }
    t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
}
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
rate() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a / b }'; }
row() { printf '%-34s %8.2f s %10s rows/s\n' "$1" "$2" "$(rate "$3" "$2")"; }

pg() { PGOPTIONS="-c client_min_messages=warning" psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
my() { mariadb -h 127.0.0.1 -u root --default-character-set=utf8mb4 "$@"; }
pg -d postgres -c "DROP DATABASE IF EXISTS rh_bench" -c "CREATE DATABASE rh_bench"
my -e "DROP DATABASE IF EXISTS rh_bench; CREATE DATABASE rh_bench"

# The same rows as CSV for the peers (DuckDB reads the NDJSON).
csv="$data/populate-${events}.csv"
$py - "$store" "$csv" <<'PY'
import sys, duckdb
duckdb.sql(f"""COPY (SELECT id, source, "detail-type" AS detail_type, time, CAST(detail AS VARCHAR) AS detail
    FROM read_json('{sys.argv[1]}', format='newline_delimited', columns={{'id':'VARCHAR','source':'VARCHAR','detail-type':'VARCHAR','time':'TIMESTAMPTZ','detail':'JSON'}}))
    TO '{sys.argv[2]}' (HEADER false)""")
PY

echo "populate: $events events ($(du -h "$store" | cut -f1)), DynamoDB $ddb_events; 2 cores"
pg_table="CREATE TABLE t (id text PRIMARY KEY, source text, detail_type text, time timestamptz, detail jsonb)"
fresh_pg() { pg -d rh_bench -c "DROP TABLE IF EXISTS t" -c "$pg_table"; }

fresh_pg
s_copy=$(secs "$bin" populate postgres --from "$store" --query "$query" --url postgres://postgres@127.0.0.1/rh_bench --table t --key id --load copy --batch-rows 5000)
fresh_pg
s_insert=$(secs "$bin" populate postgres --from "$store" --query "$query" --url postgres://postgres@127.0.0.1/rh_bench --table t --key id --load insert --batch-rows 5000)
fresh_pg
s_psql=$(secs pg -d rh_bench -c "\\copy t FROM '$csv' WITH (FORMAT csv)")
rows=$(pg -d rh_bench -c "SELECT count(*) FROM t")
[ "$rows" = "$events" ] || { echo "bench: psql loaded $rows rows, not $events" >&2; exit 1; }

my_table="CREATE TABLE t (id VARCHAR(64) PRIMARY KEY, source LONGTEXT, detail_type LONGTEXT, time DATETIME(3), detail JSON) DEFAULT CHARSET utf8mb4"
fresh_my() { my rh_bench -e "DROP TABLE IF EXISTS t; $my_table"; }
fresh_my
s_my=$(secs "$bin" populate mysql --from "$store" --query "$query" --url mysql://root@127.0.0.1/rh_bench --table t --key id --batch-rows 2000)
fresh_my
s_load=$(secs my --local-infile=1 rh_bench -e "SET time_zone='+00:00'; LOAD DATA LOCAL INFILE '$csv' INTO TABLE t FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' (id, source, detail_type, @t, detail) SET time = STR_TO_DATE(LEFT(@t, 23), '%Y-%m-%d %H:%i:%s.%f')" )

# DynamoDB on moto: rehydrate, then boto3's batch_writer, each into a fresh table.
port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$data" && exec ../.venv/bin/python ../tests/support/moto_server.py -H 127.0.0.1 -p "$port") >/dev/null 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do $py -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null && break; sleep 0.1; done
endpoint="http://127.0.0.1:$port"
export AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=eu-west-1 AWS_EC2_METADATA_DISABLED=true
$py tests/support/moto_ctl.py "$endpoint" table ours id:S
s_ddb=$(secs "$bin" populate dynamodb --from "$ddb_store" --query "$query" --table ours --concurrency 8)
$py tests/support/moto_ctl.py "$endpoint" table peer id:S
s_boto=$(secs $py - "$endpoint" "$ddb_store" <<'PY'
import json, sys, boto3
t = boto3.resource("dynamodb", endpoint_url=sys.argv[1], region_name="eu-west-1").Table("peer")
with t.batch_writer() as w:
    for line in open(sys.argv[2]):
        e = json.loads(line)
        w.put_item(Item={"id": e["id"], "source": e["source"], "detail_type": e["detail-type"], "time": e["time"], "detail": json.dumps(e["detail"])})
PY
)

# OpenSearch on osmem-server: rehydrate, then curl with the same documents as ready _bulk bodies.
osmem_bin=$($py -c "import osmem_server; print(osmem_server.resolve_binary())")
coproc OSMEM { exec "$osmem_bin" --addr 127.0.0.1:0 --no-ja; }
read -r osmem_ready <&"${OSMEM[0]}"
os_url=$($py -c 'import json,sys; print(json.loads(sys.argv[1])["url"])' "$osmem_ready")
trap 'kill $moto_pid ${OSMEM_PID:-} 2>/dev/null || true' EXIT
$py tests/support/os_ctl.py "$os_url" template bench '{"index_patterns":["ours","peer"],"template":{"mappings":{"properties":{"detail":{"type":"object","enabled":false}}}}}' >/dev/null
s_os=$(secs "$bin" populate opensearch --from "$store" --query "$query" --url "$os_url" --index ours)
bulk="$data/bulk-${events}"
rm -rf "$bulk" && mkdir -p "$bulk"
$py - "$store" "$bulk" <<'PY'
import json, sys
out, n = None, 0
for i, line in enumerate(open(sys.argv[1])):
    if i % 1000 == 0:
        out = open(f"{sys.argv[2]}/{i // 1000:06d}.ndjson", "w")
    e = json.loads(line)
    doc = {"id": e["id"], "source": e["source"], "detail_type": e["detail-type"], "time": e["time"], "detail": e["detail"]}
    out.write(json.dumps({"index": {"_index": "peer", "_id": e["id"]}}) + "\n" + json.dumps(doc) + "\n")
PY
s_curl=$(secs sh -c "ls $bulk/*.ndjson | xargs -P 2 -I{} curl -sf -o /dev/null -H 'content-type: application/x-ndjson' --data-binary @{} $os_url/_bulk")
os_docs=$(curl -s "$os_url/ours/_count" | $py -c 'import json,sys; print(json.load(sys.stdin)["count"])')
[ "$os_docs" = "$events" ] || { echo "bench: opensearch holds $os_docs of $events documents" >&2; exit 1; }

printf '%-34s %10s %17s\n' tool seconds throughput
row "rehydrate postgres (COPY+upsert)" "$s_copy" "$events"
row "rehydrate postgres (INSERT upsert)" "$s_insert" "$events"
row "psql \\copy (plain load)" "$s_psql" "$events"
row "rehydrate mysql (INSERT upsert)" "$s_my" "$events"
row "mariadb LOAD DATA (plain load)" "$s_load" "$events"
row "rehydrate dynamodb (moto)" "$s_ddb" "$ddb_events"
row "boto3 batch_writer (moto)" "$s_boto" "$ddb_events"
row "rehydrate opensearch (osmem)" "$s_os" "$events"
row "curl ready _bulk bodies (osmem)" "$s_curl" "$events"
printf 'ratio postgres COPY / INSERT:       %.2fx\n' "$(div "$s_insert" "$s_copy")"
printf 'ratio rehydrate COPY / psql \\copy:  %.2fx of its throughput\n' "$(div "$s_psql" "$s_copy")"
printf 'ratio rehydrate mysql / LOAD DATA:  %.2fx of its throughput\n' "$(div "$s_load" "$s_my")"
printf 'ratio rehydrate / boto3 (dynamodb): %.2fx\n' "$(div "$s_boto" "$s_ddb")"
printf 'ratio rehydrate / curl (opensearch): %.2fx of its throughput\n' "$(div "$s_curl" "$s_os")"
pg -d postgres -c "DROP DATABASE IF EXISTS rh_bench"
my -e "DROP DATABASE IF EXISTS rh_bench"
