#!/usr/bin/env bash
# EventBridge patterns against SQL: the same five conditions as --pattern and as --where, counted
# over the same generated store (preview --format count), and DuckDB's time for the SQL beside
# them; prints events/s and the ratio.
#   scripts/bench_pattern.sh [SIZE_MB]   (default 512)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-512}
store=$(scripts/bench_store.sh "$size_mb")
# REHYDRATE_BIN: measure that binary instead of building this checkout's release binary.
if [ -z "${REHYDRATE_BIN:-}" ]; then
    cargo build --release --quiet
fi
bin="${REHYDRATE_BIN:-${CARGO_TARGET_DIR:-target}/release/rehydrate}"
events=$(wc -l < "$store")

pattern='{"source": ["com.shop.orders", "com.shop.payments"], "detail-type": [{"prefix": "Order"}],
  "detail": {"total": [{"numeric": [">", 50, "<=", 400]}], "currency": [{"anything-but": ["USD"]}],
  "customer": {"address": {"city": [{"exists": true}]}}}}'
where="source IN ('com.shop.orders', 'com.shop.payments') AND starts_with(detail_type, 'Order')
  AND json_get_float(detail, 'total') > 50 AND json_get_float(detail, 'total') <= 400
  AND detail->>'currency' IS NOT NULL AND detail->>'currency' <> 'USD' AND detail->'customer'->'address'->'city' IS NOT NULL"

run() { # name, args...: prints "seconds count"
    local name=$1; shift
    local t0 t1 n
    t0=$(date +%s.%N)
    n=$("$bin" preview --from "$store" --format count "$@" 2>/dev/null)
    t1=$(date +%s.%N)
    echo "$(echo "$t1 - $t0" | bc -l) $n"
}
read -r tp np < <(run pattern --pattern "$pattern")
read -r tw nw < <(run where --where "$where")
printf 'bench: %s events (%s MB), five conditions\n' "$events" "$size_mb"
printf '  --pattern  %6.2f s  %10.0f events/s  selected %s\n' "$tp" "$(echo "$events / $tp" | bc -l)" "$np"
printf '  --where    %6.2f s  %10.0f events/s  selected %s\n' "$tw" "$(echo "$events / $tw" | bc -l)" "$nw"
printf '  pattern/where time ratio: %.2f\n' "$(echo "$tp / $tw" | bc -l)"
[ "$np" = "$nw" ] || { echo "bench: the pattern and the SQL selected different counts ($np, $nw)" >&2; exit 1; }
