#!/usr/bin/env bash
# Generates (once) the benchmarks' NDJSON store of SIZE_MB megabytes into bench-data/ and prints
# its path: 100,000 distinct events (~40 MB, scripts/gen_events.py) repeated with fresh ids.
#   scripts/bench_store.sh SIZE_MB
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:?SIZE_MB}
data=bench-data
mkdir -p "$data"
store="$data/events-${size_mb}mb.ndjson"
if [ ! -f "$store" ]; then
    echo "bench: generating a ${size_mb} MB NDJSON store in $store" >&2
    # 100,000 distinct events (~40 MB), repeated with fresh ids until the size is reached.
    [ -f "$data/base.ndjson" ] || python3 scripts/gen_events.py --ndjson 100000 > "$data/base.ndjson"
    python3 - "$data/base.ndjson" "$store" "$size_mb" <<'PY'
import sys
base, out, size = sys.argv[1], sys.argv[2], int(sys.argv[3]) << 20
lines = open(base, "rb").read().splitlines(keepends=True)
written, copy = 0, 0
with open(out + ".tmp", "wb") as f:
    while written < size:
        prefix = b'{"version":"0","id":"c%04d-' % copy
        chunk = b"".join(prefix + l[len(b'{"version":"0","id":"'):] for l in lines)
        f.write(chunk)
        written += len(chunk)
        copy += 1
import os
os.replace(out + ".tmp", out)
PY
fi
echo "$store"
