#!/usr/bin/env bash
# DynamoDB sources against the local emulator (moto, from .venv): a table scan's items/s with 1
# and with 4 segments over ITEMS items (default 2,000 events of scripts/gen_events.py), and a
# DynamoDB export's MB/s (gzip data files on moto's S3) over EXPORT_ITEMS (default 100,000).
# moto itself is the bottleneck of the scan: each page walks the table from its start to the
# start key, in Python, so a scan of moto is quadratic and 4 segments share one interpreter; the
# figures compare segment counts on moto, not on DynamoDB.
#   scripts/bench_dynamodb.sh [ITEMS] [EXPORT_ITEMS]
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-2000}
export_items=${2:-100000}
data=bench-data
mkdir -p "$data"
[ -x .venv/bin/python ] || { echo "bench: run scripts/test.sh once first (it sets up .venv)" >&2; exit 1; }
py=.venv/bin/python
# REHYDRATE_BIN: measure that binary instead of building this checkout's release binary.
if [ -z "${REHYDRATE_BIN:-}" ]; then
    cargo build --release --quiet
fi
bin="${REHYDRATE_BIN:-${CARGO_TARGET_DIR:-target}/release/rehydrate}"
store="$data/ddb-$items.ndjson"
[ -f "$store" ] || python3 scripts/gen_events.py --ndjson "$items" > "$store"
export_store="$data/ddb-$export_items.ndjson"
[ -f "$export_store" ] || python3 scripts/gen_events.py --ndjson "$export_items" > "$export_store"

port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
work=$(mktemp -d)
(cd "$work" && exec "$OLDPWD/$py" "$OLDPWD/tests/support/moto_server.py" -H 127.0.0.1 -p "$port" >/dev/null 2>&1) &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null; rm -rf "$work"' EXIT
url="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -s "$url" >/dev/null 2>&1 && break; sleep 0.1; done
ctl() { $py tests/support/moto_ctl.py "$url" "$@"; }
export AWS_ENDPOINT_URL="$url" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=eu-west-1 AWS_EC2_METADATA_DISABLED=true

ctl table store id:S
ctl put-items store "$store" >/dev/null
ctl export "$work/export" "" "$export_store" 01-bench full
ctl upload exports "" "$work/export" >/dev/null
export_bytes=$(du -cb "$work"/export/AWSDynamoDB/01-bench/data/*.json.gz | tail -1 | cut -f1)

timed() { # expected count, args...: prints seconds, checks the count
    local want=$1; shift
    local t0 t1 n
    t0=$(date +%s.%N)
    n=$("$bin" preview --format count "$@" 2>"$work/stderr")
    t1=$(date +%s.%N)
    [ "$n" = "$want" ] || { echo "bench: $* counted ${n:-nothing}, not $want:" >&2; tail -3 "$work/stderr" >&2; exit 1; }
    echo "$t1 - $t0" | bc -l
}
s1=$(timed "$items" --from dynamodb://store --segments 1)
s4=$(timed "$items" --from dynamodb://store --segments 4)
ex=$(timed "$export_items" --from dynamodb-export://exports/AWSDynamoDB/01-bench/)
printf 'bench: a table of %s items and an export of %s, on moto\n' "$items" "$export_items"
printf '  scan, 1 segment    %6.2f s  %8.0f items/s\n' "$s1" "$(echo "$items / $s1" | bc -l)"
printf '  scan, 4 segments   %6.2f s  %8.0f items/s  (%.2fx)\n' "$s4" "$(echo "$items / $s4" | bc -l)" "$(echo "$s1 / $s4" | bc -l)"
printf '  export             %6.2f s  %8.0f items/s  %.1f MB/s of gzip data files (%s bytes)\n' "$ex" \
    "$(echo "$export_items / $ex" | bc -l)" "$(echo "$export_bytes / $ex / 1000000" | bc -l)" "$export_bytes"
