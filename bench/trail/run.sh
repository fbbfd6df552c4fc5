#!/usr/bin/env bash
# Benchmarks of the trail (docs/benchmarks.md, section "Sealing, detection, audit queries"):
#   seal        sealing throughput vs the raw consume rate of the same topic, same run
#   detect-lag  detector lag (p99 s behind the trail) at RATE events/s vs a plain decoding consumer
#   suspend     reads and seconds from the first read of the 2024 pattern to the suspension
#   audit-query auditors' queries on a 10-million-entry trail vs the same query without its index
# Usage: bench/trail/run.sh [seal|detect-lag|suspend|audit-query ...]   (default: all)
# Needs the local stack (make up) and the schema registry. Builds the examples in release.
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/local/env.sh
scenarios=("${@:-seal detect-lag suspend audit-query}")
scenarios=(${scenarios[@]})
cargo build --release -p socle-seal --example seal_bench -p socle-detect --example detect_bench \
  -p socle-audit --example query_bench
bin=target/release/examples
rec() { python3 bench/record.py "$@"; }
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$2)" "$1"; }
out=$(mktemp -d)
for s in "${scenarios[@]}"; do
  case "$s" in
    seal)
      cmd="$bin/seal_bench ${SEAL_ENTRIES:-300000}"
      $cmd > "$out/seal.json"; cat "$out/seal.json"
      rec seal throughput "$(field "$out/seal.json" "['seal_per_s']")" "$(field "$out/seal.json" "['raw_per_s']")" entries/s "bench/trail/run.sh seal"
      ;;
    detect-lag)
      cmd="$bin/detect_bench lag ${RATE:-1000} ${SECONDS_RUN:-30}"
      $cmd > "$out/lag.json"; cat "$out/lag.json"
      rec detect-lag lag-p99 "$(field "$out/lag.json" "['lag_p99_s']")" "$(field "$out/lag.json" "['baseline_p99_s']")" s "bench/trail/run.sh detect-lag"
      ;;
    suspend)
      cmd="$bin/detect_bench suspend ${TRIALS:-5}"
      $cmd > "$out/suspend.json"; cat "$out/suspend.json"
      rec suspend reads-until-suspension "$(field "$out/suspend.json" "['reads_median']")" "$(field "$out/suspend.json" "['threshold']")" reads "bench/trail/run.sh suspend"
      rec suspend seconds-until-suspension "$(field "$out/suspend.json" "['seconds_median']")" - s "bench/trail/run.sh suspend"
      ;;
    audit-query)
      cmd="$bin/query_bench ${ROWS:-10000000} ${SAMPLES:-50}"
      $cmd > "$out/query.json"; cat "$out/query.json"
      for q in who_accessed journal timeline actor_week organisation_day; do
        rec audit-query "$q-p99" "$(field "$out/query.json" "['$q']['p99_ms']")" "$(field "$out/query.json" "['who_accessed_without_index']['p50_ms']")" ms "bench/trail/run.sh audit-query"
      done
      ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done
