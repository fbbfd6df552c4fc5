#!/usr/bin/env bash
# The access trail's cost on the API: person reads and scoped searches, each measured against
# the same data in the same run with the trail (production) and without it (a benchmark-only
# build, feature bench-unsafe-no-trail: no configuration can turn the trail off).
# Load generator: wrk (Debian) at fixed concurrency. See docs/benchmarks.md.
# Usage: bench/api/run.sh [SECONDS] [CONNECTIONS] [ROUNDS]   (defaults 15 16 2)
# Env: BUILD=debug to use a debug build; RECORD=1 to add the ratios to bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/local/env.sh
SECS=${1:-15}; CONNS=${2:-16}; ROUNDS=${3:-2}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
PROFILE=${BUILD:-release}
FLAG=$([[ $PROFILE == release ]] && echo --release || true)
cargo build -q $FLAG -p socle-api --example bench_server --features bench-unsafe-no-trail
export BENCH_DIR; BENCH_DIR=$(mktemp -d)
"target/$PROFILE/examples/bench_server" >"$BENCH_DIR/server.log" 2>&1 & SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$BENCH_DIR"' EXIT
for _ in $(seq 1 300); do [[ -s $BENCH_DIR/env ]] && break; sleep 1; done
[[ -s $BENCH_DIR/env ]] || { cat "$BENCH_DIR/server.log"; exit 1; }
set -a; . "$BENCH_DIR/env"; set +a
# Sanity: both answer 200 and only the trail-less one says so.
for u in "$URL_TRAIL" "$URL_NOTRAIL"; do
  id=$(head -1 "$BENCH_DIR/ids")
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$u/persons/$id")
  [[ $code == 200 ]] || { echo "$u answered $code"; exit 1; }
done

run() { # SCRIPT URL -> "rps p50_ms p99_ms non2xx"
  wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "bench/api/$1.lua" "$2" | tee "$BENCH_DIR/wrk.out" | python3 -c '
import re, sys
t = sys.stdin.read()
def ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    if not m:
        sys.exit("cannot read a latency of " + repr(s) + " in:\n" + t)
    v, u = m.groups()
    return float(v) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(rps, p50, p99, bad.group(1) if bad else 0)'
}
# Warm-up (JWKS fetch, schema registration, connection pools, PostgreSQL caches): not measured.
for s in read search; do for u in "$URL_TRAIL" "$URL_NOTRAIL"; do
  wrk -t2 -c"$CONNS" -d3s -s "bench/api/$s.lua" "$u" >/dev/null
done; done
declare -A RPS P50 P99
for scenario in read search; do
  for r in $(seq 1 "$ROUNDS"); do
    for mode in trail notrail; do
      url=$([[ $mode == trail ]] && echo "$URL_TRAIL" || echo "$URL_NOTRAIL")
      read -r rps p50 p99 bad < <(run "$scenario" "$url")
      [[ $bad == 0 ]] || { echo "$scenario/$mode: $bad non-2xx answers"; exit 1; }
      echo "$scenario round $r $mode: $rps req/s, p50 $p50 ms, p99 $p99 ms"
      RPS[$scenario.$mode]="${RPS[$scenario.$mode]:-} $rps"
      P50[$scenario.$mode]="${P50[$scenario.$mode]:-} $p50"
      P99[$scenario.$mode]="${P99[$scenario.$mode]:-} $p99"
    done
  done
done
for scenario in read search; do
  python3 - "$scenario" "${RPS[$scenario.trail]}" "${RPS[$scenario.notrail]}" \
    "${P50[$scenario.trail]}" "${P50[$scenario.notrail]}" "${P99[$scenario.trail]}" "${P99[$scenario.notrail]}" <<'PY'
import statistics as st, sys
s = sys.argv[1]
v = [list(map(float, a.split())) for a in sys.argv[2:]]
rt, rn, pt, pn, qt, qn = (st.median(x) for x in v)
print(f"{s}: trail {rt:.0f} req/s p50 {pt:.2f} ms p99 {qt:.2f} ms | without {rn:.0f} req/s p50 {pn:.2f} ms p99 {qn:.2f} ms"
      f" | throughput ratio {rt/rn:.3f}, p99 +{qt-qn:.2f} ms")
open(f"{__import__('os').environ['BENCH_DIR']}/{s}.result", "w").write(f"{rt} {rn} {qt} {qn}\n")
PY
  if [[ ${RECORD:-0} == 1 ]]; then
    read -r rt rn qt qn < "$BENCH_DIR/$scenario.result"
    cmd="bench/api/run.sh $SECS $CONNS $ROUNDS (wrk -t2 -c$CONNS, $PROFILE build, median of $ROUNDS rounds)"
    python3 bench/record.py "access-trail-$scenario" throughput "$rt" "$rn" req/s "$cmd"
    python3 bench/record.py "access-trail-$scenario" p99_latency "$qt" "$qn" ms "$cmd"
  fi
done
