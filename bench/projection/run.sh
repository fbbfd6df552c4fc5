#!/usr/bin/env bash
# Projection benchmark (docs/benchmarks.md, "Projection"): the real projector on a backlog of
# synthetic person events vs the PostgreSQL ceiling (same batches as UNNEST upserts + offsets,
# nothing else), same machine, same run; then a full rebuild of every model, and the
# event-to-visible latency at a steady offered load. Records scenarios `projection`, `rebuild`
# and `projection-latency` in bench/results.json.
#
#   bench/projection/run.sh [PERSONS] [BATCH] [LATENCY_RATE]
#       default 250000 persons x 4 events = 1,000,000 events, batches of 1000, 400 events/s (100 persons/s)
#
# Needs the local stack (deploy/local/stack.sh up; make registry). Release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
persons="${1:-250000}"
batch="${2:-1000}"
rate="${3:-400}"
# shellcheck source=/dev/null
. deploy/local/env.sh
cargo build --release -q -p socle-projector --example projection_bench
out="$(mktemp)"
target/release/examples/projection_bench --persons "$persons" --batch "$batch" --latency-rate "$rate" \
  >"$out" 2>"$out.err" || { cat "$out.err" >&2; exit 1; }
grep -E "^(backlog|projection|latency|rebuild|ceiling)" "$out.err" >&2 || true
command="bench/projection/run.sh $persons $batch $rate"
python3 - "$out" "$command" <<'PY'
import json, subprocess, sys
r = json.load(open(sys.argv[1]))
cmd = sys.argv[2]
def rec(scenario, metric, value, baseline, unit):
    subprocess.run(["bench/record.py", scenario, metric, str(value),
                    "-" if baseline is None else str(baseline), unit, cmd], check=True, stdout=subprocess.DEVNULL)
rec("projection", "throughput", round(r["projection_rate"]), round(r["ceiling_rate"]), "events/s")
rec("rebuild", "seconds", round(r["rebuild_seconds"], 1), None, "s")
rec("rebuild", "throughput", round(r["rebuild_events"] / r["rebuild_seconds"]), round(r["ceiling_rate"]), "events/s")
rec("projection-latency", "p50", round(r["latency_p50_ms"], 1), None, "ms")
rec("projection-latency", "p99", round(r["latency_p99_ms"], 1), None, "ms")
print(json.dumps(r, indent=2))
PY
