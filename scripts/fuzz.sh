#!/usr/bin/env bash
# Fuzz ingestion's frame check and Avro decoding (docs/ingest.md, "Fuzzing") for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s; frame ingress resolve)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Not part of CI's
# critical path. A crash stops that target and leaves its input in fuzz/artifacts/<target>/:
# the script copies it to fuzz/regressions/<target>/ (replayed by
# `cargo test -p socle-ingest --test fuzz_regressions`) and exits non-zero. Fix the bug, keep
# the file.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame ingress resolve)

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 2; }
# The runtime referential the rules are checked against (reference/README.md).
export SOCLE__REFERENCE__DIR="${SOCLE__REFERENCE__DIR:-$PWD/reference}"
status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
  # Start from the kept crash inputs too.
  find "fuzz/regressions/$t" -type f ! -name '.*' -exec cp {} "fuzz/corpus/$t/" \;
  echo "== fuzzing $t for ${seconds}s"
  # No sanitizer: the code under test has no unsafe (workspace lint), and an uninstrumented
  # librdkafka build keeps the build simple. -rss_limit_mb bounds memory, -timeout hangs.
  if ! cargo +nightly fuzz run --sanitizer none "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=4096; then
    status=1
    for a in fuzz/artifacts/"$t"/*; do
      [ -f "$a" ] || continue
      cp "$a" "fuzz/regressions/$t/"
      echo "kept $(basename "$a") as a regression input in fuzz/regressions/$t/" >&2
    done
  fi
done
exit $status
