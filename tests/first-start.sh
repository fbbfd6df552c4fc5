#!/usr/bin/env bash
# The first start, as a newcomer meets it: `make up` on a fresh data folder (its own Kafka and
# PostgreSQL, formatted and initialised now, on ports of their own so that it runs beside the
# stack the other tests use), then every component must be running and healthy (`make status`)
# and the walkthrough `make up` printed must pass step by step (`make demo`). Everything is
# stopped and the folder deleted at the end, whatever happened.
#   tests/first-start.sh        (make test runs it; needs the binary built: cargo build --bin socle)
# Ports: 2xxxx (Kafka 29092/29093, PostgreSQL 25432, registry 28081, API 28080, dev IdP 28090,
# health 291xx); override SOCLE_FIRST_START_BASE=NN for another range.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
base="${SOCLE_FIRST_START_BASE:-2}"

# A newcomer's shell: none of the settings of the stack the other tests use (env.sh may have
# been sourced by the caller) may leak into this one.
for v in $(compgen -v SOCLE__); do unset "$v"; done
unset SOCLE_DATA SOCLE_KAFKA_PORT SOCLE_KAFKA_CONTROLLER_PORT SOCLE_PG_PORT SOCLE_BIN
data="$(mktemp -d "${TMPDIR:-/tmp}/socle-first-start.XXXXXX")"
export SOCLE_DATA="$data"
export SOCLE_KAFKA_PORT="${base}9092" SOCLE_KAFKA_CONTROLLER_PORT="${base}9093" SOCLE_PG_PORT="${base}5432"
export SOCLE__KAFKA__BROKERS="localhost:$SOCLE_KAFKA_PORT"
export SOCLE__DATABASE__URL="postgres://socle:socle@localhost:$SOCLE_PG_PORT/socle"
export SOCLE__REGISTRY__URL="http://localhost:${base}8081" SOCLE__REGISTRY__LISTEN="127.0.0.1:${base}8081"
export SOCLE__API__LISTEN="127.0.0.1:${base}8080" SOCLE__AUTH__DEV_IDP_LISTEN="127.0.0.1:${base}8090"
for c in INGEST:1 PROJECTOR:2 FEED:3 SEAL:4 DETECT:5 AUDIT:6; do
  export "SOCLE__HEALTH__${c%%:*}=127.0.0.1:${base}910${c##*:}"
done
# The interop venv is reused (it is not part of the stack): where make test made it.
export SOCLE_VENV="${SOCLE_VENV:-$root/.local/venv}"

cleanup() {
  local rc=$?
  make --no-print-directory down PURGE=1 >"$data.down.log" 2>&1 || cat "$data.down.log" >&2
  rm -rf "$data" "$data.down.log" "$data.up.log"
  exit $rc
}
trap cleanup EXIT

start=$SECONDS
echo "first-start: make up on a fresh data folder ($data)"
if ! make --no-print-directory up >"$data.up.log" 2>&1; then
  tail -n 60 "$data.up.log" >&2
  for f in "$data"/logs/*.log; do echo "---- $f" >&2; tail -n 15 "$f" >&2; done
  echo "first-start: FAILED: make up did not succeed at the first try" >&2
  exit 1
fi
echo "first-start: make up succeeded in $((SECONDS - start)) s"
status="$(. deploy/local/env.sh && deploy/local/components.sh status)" || {
  echo "$status" >&2
  echo "first-start: FAILED: not every component is running and healthy after make up" >&2
  exit 1
}
echo "$status"
grep -q "make demo" "$data.up.log" || { echo "first-start: FAILED: make up printed no walkthrough" >&2; exit 1; }
make --no-print-directory demo
echo "first-start: make up, make status and make demo took $((SECONDS - start)) s"
echo "first-start: 1 passed, 0 failed"
