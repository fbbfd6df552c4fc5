#!/usr/bin/env bash
# Ingest benchmark (docs/benchmarks.md, "Ingest"): socle ingest vs a raw rdkafka consume→produce
# loop on the same backlog of synthetic ingress messages, same broker, same run; then the
# dead-letter path under a 10% bad-input mix. Records scenario `ingest` in bench/results.json.
#
#   bench/ingest/run.sh [PERSONS] [BAD_PERSONS]      (default 200000 people = 1,000,000 messages;
#                                                    40000 people ≈ 222,000 messages with 10% bad)
#
# Needs the local stack (deploy/local/stack.sh up; make registry). Release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
persons="${1:-200000}"
bad_persons="${2:-40000}"
# shellcheck source=/dev/null
. deploy/local/env.sh
# The runtime referential (reference/README.md).
export SOCLE__REFERENCE__DIR="${SOCLE__REFERENCE__DIR:-$PWD/reference}"
# SOCLE_BENCH_NO_BUILD=1 reuses the last release build (e.g. while the workspace does not build).
[ -n "${SOCLE_BENCH_NO_BUILD:-}" ] || cargo build --release -q -p socle-ingest --example ingest_bench
out="$(mktemp)"
/usr/bin/time -v target/release/examples/ingest_bench --persons "$persons" --bad-persons "$bad_persons" \
  >"$out" 2>"$out.err" || { cat "$out.err" >&2; exit 1; }
grep -E "^(backlog|bad-mix|raw|ingest)|Maximum resident|Elapsed" "$out.err" >&2 || true
cat "$out"
command="bench/ingest/run.sh $persons $bad_persons"
python3 - "$out" "$command" <<'PY'
import json, subprocess, sys
r = json.load(open(sys.argv[1]))
cmd = sys.argv[2]
def rec(metric, value, baseline, unit):
    subprocess.run(["bench/record.py", "ingest", metric, str(value),
                    "-" if baseline is None else str(baseline), unit, cmd], check=True)
rec("throughput", round(r["ingest_rate"]), round(r["raw_rate"]), "events/s")
rec("dead-letter-mix-throughput", round(r["bad_mix_rate"]), round(r["raw_rate"]), "messages/s")
rec("backlog-seconds", round(r["ingest_seconds"], 1), None, "s")
print(f'ingest {r["ingest_rate"]:.0f} events/s vs raw {r["raw_rate"]:.0f} msg/s: ratio {r["ratio"]:.3f} '
      f'({r["messages"]} messages in {r["ingest_seconds"]:.1f} s); 10% bad mix: {r["bad_mix_rate"]:.0f} msg/s, '
      f'{r["bad_mix_dead_lettered"]} dead letters of {r["bad_mix_messages"]}')
PY
