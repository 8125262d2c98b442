#!/usr/bin/env bash
# rehydrate's speed beside its peers, on the same generated store, in one run:
#   1. the headline job — placed orders over 100 EUR, every envelope column, to zstd Parquet —
#      from an NDJSON store, the same events as one JSON array, and the NDJSON gzip-compressed,
#      each through rehydrate, DuckDB and jq (throughput, peak RSS, ratios);
#   2. counting a selective filter (`preview --format count`) beside DuckDB's count(*) and jq;
#   3. the action driver (replay, invoke, populate dynamodb) against a local endpoint that
#      answers success at once (examples/noop_endpoint.rs): events/s from one process;
#   4. memory under bad input, and the job with the store on S3 (moto).
#
#   scripts/bench.sh [SIZE_MB]     (default 2048: a 2 GB store, generated once into bench-data/)
#
# rehydrate and DuckDB run RUNS times each (default 3; the median is shown), jq once.
# REHYDRATE_BIN measures a given binary instead of building one. jq cannot write Parquet: its
# legs filter to NDJSON, which flatters it slightly; it reads the array with --stream (holding
# a 2 GB array whole would take tens of GB).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-2048}
data=bench-data
mkdir -p "$data"
store="$data/events-${size_mb}mb.ndjson"

scripts/bench_store.sh "$size_mb" >/dev/null
array="$data/events-${size_mb}mb.json"
gz="$store.gz"
if [ ! -f "$array" ]; then
    { echo '['; sed '$!s/$/,/' "$store"; echo ']'; } > "$array.tmp" && mv "$array.tmp" "$array"
fi
[ -f "$gz" ] || { gzip -c "$store" > "$gz.tmp" && mv "$gz.tmp" "$gz"; }

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import duckdb' 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
fi
command -v jq >/dev/null || { echo "bench: jq is needed (apt-get install jq)" >&2; exit 1; }

target_dir="${CARGO_TARGET_DIR:-target}"
if [ -n "${REHYDRATE_BIN:-}" ]; then
    bin=$REHYDRATE_BIN
else
    cargo build --release --quiet
    bin="$target_dir/release/rehydrate"
fi
cargo build --release --quiet --example noop_endpoint
noop="$target_dir/release/examples/noop_endpoint"

bytes=$(stat -c %s "$store")
events=$(wc -l < "$store")
out="$data/out"
rm -rf "$out"; mkdir -p "$out"

# The job: placed orders over 100 EUR, every envelope column, written as zstd Parquet.
ours_where="detail_type = 'OrderPlaced' AND json_get_float(detail, 'total') > 100"
duck_where="\"detail-type\" = 'OrderPlaced' AND CAST(detail->>'total' AS DOUBLE) > 100"
jq_filter='select(.["detail-type"] == "OrderPlaced" and .detail.total > 100)'

measure() { # name, command...: prints "seconds peak_rss_kb"
    local name=$1; shift
    sync
    /usr/bin/time -f "%e %M" -o "$data/time.$name" "$@" > "$data/stdout.$name" 2> "$data/stderr.$name" || {
        echo "bench: $name failed:" >&2; tail -5 "$data/stderr.$name" >&2; exit 1; }
    cat "$data/time.$name"
}
# The same, RUNS times (default 3; this VM's timings vary by a third from run to run): the
# median time, and the largest peak RSS.
runs=${RUNS:-3}
measure_median() {
    local name=$1; shift
    local i
    for i in $(seq 1 "$runs"); do measure "$name" "$@"; done | sort -n | awk -v n="$runs" \
        '{ t[NR] = $1; if ($2 > m) m = $2 } END { print t[int((n + 1) / 2)], m }'
}
count() { .venv/bin/python -c "import duckdb; print(duckdb.sql(\"$1\").fetchone()[0])"; }

cat > "$data/duckdb_job.py" <<'PY'
import sys, duckdb
store, fmt, where, out = sys.argv[1:5]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
cols = {'version': 'VARCHAR', 'id': 'VARCHAR', 'detail-type': 'VARCHAR', 'source': 'VARCHAR', 'account': 'VARCHAR',
        'time': 'TIMESTAMPTZ', 'region': 'VARCHAR', 'resources': 'VARCHAR[]', 'detail': 'JSON'}
rel = f"read_json('{store}', format='{fmt}', columns={cols!r})"
if out == '-':
    print(con.execute(f"SELECT count(*) FROM {rel} WHERE {where}").fetchone()[0])
else:
    con.execute(f"COPY (SELECT * FROM {rel} WHERE {where}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
PY

report() { # title, then per tool: name seconds rss rows
    python3 - "$bytes" "$events" "$(nproc)" "$@" <<'PY'  # (times: median of RUNS for rehydrate and DuckDB)
import sys
b, ev, cores, title = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
rest = sys.argv[5:]
rows = [rest[i:i + 4] for i in range(0, len(rest), 4)]
print(f"{title} ({b / 2**20:,.0f} MB, {ev:,} events, {cores} cores)")
print(f"  {'tool':<10} {'seconds':>8} {'MB/s':>8} {'events/s':>12} {'peak RSS MB':>12} {'rows out':>10} {'time vs DuckDB':>15}")
t = {r[0]: float(r[1]) for r in rows}
for name, secs, rss, n in rows:
    secs = float(secs)
    print(f"  {name:<10} {secs:>8.2f} {b / 2**20 / secs:>8.0f} {ev / secs:>12,.0f} {int(rss) / 1024:>12.0f} {int(n):>10,} {secs / t['duckdb']:>14.2f}x")
print(f"  rehydrate's time / DuckDB's: {t['rehydrate'] / t['duckdb']:.2f} (goal <= 0.67); / jq's: {t['rehydrate'] / t['jq']:.2f}")
counts = {r[0]: int(r[3]) for r in rows}
if len(set(counts.values())) != 1:
    print(f"  WARNING: the tools selected different row counts: {counts}")
PY
}

job() { # label, store, DuckDB format, jq command (reads the store, filter appended)
    local label=$1 input=$2 fmt=$3 jqcmd=$4 t r
    read -r t_ours rss_ours < <(measure_median "rehydrate-$label" "$bin" populate parquet --from "$input" --where "$ours_where" \
        --to "$out/rehydrate-$label" --overwrite --report-dir "$data/runs" --output json)
    read -r t_duck rss_duck < <(measure_median "duckdb-$label" .venv/bin/python "$data/duckdb_job.py" "$input" "$fmt" "$duck_where" "$out/duckdb-$label.parquet")
    read -r t_jq rss_jq < <(measure "jq-$label" sh -c "$jqcmd > '$out/jq-$label.ndjson'")
    report "$label -> filter -> Parquet (jq: NDJSON)" \
        rehydrate "$t_ours" "$rss_ours" "$(count "SELECT count(*) FROM read_parquet('$out/rehydrate-$label/*.parquet')")" \
        duckdb "$t_duck" "$rss_duck" "$(count "SELECT count(*) FROM read_parquet('$out/duckdb-$label.parquet')")" \
        jq "$t_jq" "$rss_jq" "$(wc -l < "$out/jq-$label.ndjson")"
    rm -rf "$out/rehydrate-$label" "$out/duckdb-$label.parquet" "$out/jq-$label.ndjson"
}

job NDJSON "$store" newline_delimited "jq -c '$jq_filter' '$store'"
job "JSON array" "$array" array "jq -cn --stream 'fromstream(1 | truncate_stream(inputs)) | $jq_filter' '$array'"
job "NDJSON gzip" "$gz" newline_delimited "gzip -dc '$gz' | jq -c '$jq_filter'"

# Counting a selective filter (about 6% of the events).
read -r t_ours rss_ours < <(measure_median count-rehydrate "$bin" preview --from "$store" --format count \
    --where "detail_type = 'OrderCancelled'")
read -r t_duck rss_duck < <(measure_median count-duckdb .venv/bin/python "$data/duckdb_job.py" "$store" newline_delimited \
    "\"detail-type\" = 'OrderCancelled'" -)
read -r t_jq rss_jq < <(measure count-jq sh -c "jq -c 'select(.[\"detail-type\"] == \"OrderCancelled\") | 1' '$store' | wc -l")
report "NDJSON -> count of detail_type = 'OrderCancelled'" \
    rehydrate "$t_ours" "$rss_ours" "$(tail -n 1 "$data/stdout.count-rehydrate")" \
    duckdb "$t_duck" "$rss_duck" "$(tail -n 1 "$data/stdout.count-duckdb")" \
    jq "$t_jq" "$rss_jq" "$(tail -n 1 "$data/stdout.count-jq")"

# The driver: the first DRIVER_EVENTS events (default 1,000,000) sent to the no-op endpoint.
driver_events=${DRIVER_EVENTS:-1000000}
dstore="$data/driver-${driver_events}.ndjson"
[ -f "$dstore" ] || head -n "$driver_events" "$store" > "$dstore"
"$noop" > "$data/noop.out" 2>&1 &
noop_pid=$!
trap 'kill $noop_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q listening "$data/noop.out" 2>/dev/null && break; sleep 0.05; done
noop_url="http://$(sed -n 's/^listening on //p' "$data/noop.out")"
noop_env=(env AWS_ENDPOINT_URL="$noop_url" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true)
stats() { curl -s "$noop_url/__stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["entries"])'; }
echo "driver: $(printf "%'d" "$driver_events") events from one process to a local endpoint that answers success at once (goal >= 100,000 events/s)"
printf '  %-22s %8s %12s %12s %12s %12s\n' action seconds events/s "peak RSS MB" succeeded "endpoint saw"
drive() { # label, rehydrate arguments...
    local label=$1; shift
    local before after t rss ok
    before=$(stats)
    read -r t rss < <(measure "driver-$label" "${noop_env[@]}" "$bin" "$@" --from "$dstore" --report-dir "$data/runs" --output json)
    after=$(stats)
    ok=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["succeeded"])' "$data/stdout.driver-$label")
    printf '  %-22s %8.2f %12s %12d %12s %12s\n' "$label" "$t" \
        "$(awk -v n="$driver_events" -v t="$t" 'BEGIN { printf "%\047d", n / t }')" "$((rss / 1024))" "$ok" "$((after - before))"
}
drive "replay" replay --bus noop --concurrency 64
drive "invoke (Event)" invoke --function noop --invocation-type event --concurrency 64
drive "populate dynamodb" populate dynamodb --table noop --concurrency 64
kill $noop_pid 2>/dev/null || true

measure_any() { # like measure, for a run that is meant to end with a non-zero exit code
    local name=$1; shift
    sync
    /usr/bin/time -f "%e %M" -o "$data/time.$name" "$@" > "$data/stdout.$name" 2> "$data/stderr.$name" || true
    tail -n 1 "$data/time.$name"
}

# Memory under two bad inputs (rehydrate only: the peers have no equivalent job).
# 1. A rejection storm: a --map that rejects every record of the same store (each is rejected,
#    reported and dead-lettered).
read -r t_storm rss_storm < <(measure_any storm "$bin" populate parquet --from "$store" --map source=no.such.field \
    --to "$out/storm" --report-dir "$data/runs" --dead-letter "$data/storm-dead-letter.ndjson" --output json)
# 2. A file of the same size without a single newline (refused at the record cap).
nonl="$data/no-newline-${size_mb}mb.ndjson"
[ -f "$nonl" ] || head -c "$bytes" /dev/zero | tr '\0' 'x' > "$nonl"
read -r t_nonl rss_nonl < <(measure_any nonl "$bin" populate parquet --from "$nonl" --to "$out/nonl" \
    --report-dir "$data/runs" --output json)
rm -f "$data/storm-dead-letter.ndjson"
printf 'rejection storm (every record rejected): %6.1f s, peak RSS %4d MB\n' "$t_storm" "$((rss_storm / 1024))"
printf 'no newline in %4d MB:                    %6.1f s, peak RSS %4d MB\n' "$((bytes >> 20))" "$t_nonl" "$((rss_nonl / 1024))"

# 3. The same job with the store on S3 (moto, on this machine): NDJSON objects -> filter ->
#    Parquet on S3, beside the same objects read as local files and DuckDB's httpfs on the same
#    objects. A subset of the store (S3_MB, default 256 MB, in 8 objects): moto holds objects in
#    memory and serves them from Python, so these figures say how the readers compare on one
#    server, not what S3 itself delivers.
s3_mb=${S3_MB:-256}
s3dir="$data/s3-${s3_mb}mb"
if [ ! -d "$s3dir" ]; then
    mkdir -p "$s3dir.tmp"
    head -c "$((s3_mb << 20))" "$store" | head -n -1 > "$s3dir.tmp/all"
    split -n l/8 -d --additional-suffix=.ndjson "$s3dir.tmp/all" "$s3dir.tmp/part-"
    rm "$s3dir.tmp/all"
    mv "$s3dir.tmp" "$s3dir"
fi
s3_bytes=$(du -cb "$s3dir"/*.ndjson | tail -1 | cut -f1)
# DuckDB's httpfs, from PyPI (duckdb-ext-httpfs), in a virtualenv of its own: it is built for
# DuckDB 1.4.4, older than the test virtualenv's DuckDB.
hv="$data/httpfs-venv"
if [ ! -x "$hv/bin/python" ]; then
    python3 -m venv "$hv"
    "$hv/bin/pip" install --quiet --disable-pip-version-check duckdb==1.4.4 duckdb-ext-httpfs==1.4.4.20260205
fi
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$data" && exec ../.venv/bin/python ../tests/support/moto_server.py -H 127.0.0.1 -p "$port") >/dev/null 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null && break; sleep 0.1; done
endpoint="http://127.0.0.1:$port"
.venv/bin/python tests/support/moto_ctl.py "$endpoint" upload bench events/ "$s3dir" >/dev/null
s3env=(env AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=eu-west-1 AWS_EC2_METADATA_DISABLED=true)
read -r t_s3 rss_s3 < <(measure s3 "${s3env[@]}" "$bin" populate parquet --from s3://bench/events/ --where "$ours_where" \
    --to s3://bench/out/ --report-dir "$data/runs" --output json)
read -r t_s3local rss_s3local < <(measure s3local "$bin" populate parquet --from "$s3dir" --where "$ours_where" \
    --to "$out/s3local" --report-dir "$data/runs" --output json)
cat > "$data/duckdb_httpfs_job.py" <<'PY'
import glob, sys, duckdb
endpoint, where = sys.argv[1:3]
ext = glob.glob(sys.prefix + "/lib/python3*/site-packages/duckdb_ext/extensions/*/*/httpfs.duckdb_extension")[0]
con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
con.execute(f"LOAD '{ext}'")
con.execute("SET TimeZone = 'UTC'")
con.execute(f"CREATE SECRET s3 (TYPE s3, KEY_ID 'test', SECRET 'test', REGION 'eu-west-1', ENDPOINT '{endpoint.split('://')[1]}', USE_SSL false, URL_STYLE 'path')")
cols = {'version': 'VARCHAR', 'id': 'VARCHAR', 'detail-type': 'VARCHAR', 'source': 'VARCHAR', 'account': 'VARCHAR',
        'time': 'TIMESTAMPTZ', 'region': 'VARCHAR', 'resources': 'VARCHAR[]', 'detail': 'JSON'}
con.execute(f"COPY (SELECT * FROM read_json('s3://bench/events/*.ndjson', format='newline_delimited', columns={cols!r}) "
            f"WHERE {where}) TO 's3://bench/duck/out.parquet' (FORMAT parquet, COMPRESSION zstd)")
PY
read -r t_s3duck rss_s3duck < <(measure s3duck "$hv/bin/python" "$data/duckdb_httpfs_job.py" "$endpoint" "$duck_where")
mbps() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.1f", b / 1048576 / t }'; }
printf 'S3 job (%d MB in 8 objects on moto -> filter -> Parquet):\n' "$((s3_bytes >> 20))"
printf '  rehydrate s3 -> s3:       %6.1f s %7s MB/s, peak RSS %4d MB\n' "$t_s3" "$(mbps "$s3_bytes" "$t_s3")" "$((rss_s3 / 1024))"
printf '  rehydrate local -> local: %6.1f s %7s MB/s, peak RSS %4d MB\n' "$t_s3local" "$(mbps "$s3_bytes" "$t_s3local")" "$((rss_s3local / 1024))"
printf '  duckdb httpfs s3 -> s3:   %6.1f s %7s MB/s, peak RSS %4d MB\n' "$t_s3duck" "$(mbps "$s3_bytes" "$t_s3duck")" "$((rss_s3duck / 1024))"
printf "  rehydrate's time / DuckDB's on S3: %.2f\n" "$(awk -v a="$t_s3" -v b="$t_s3duck" 'BEGIN { print a / b }')"
