#!/usr/bin/env bash
# socle's long-running components on the local stack, one process each, supervised (restarted
# whenever one exits), each answering /health and /metrics.
#   components.sh up       build nothing; migrate, then start every component and wait for each
#                          to be healthy (in dependency order)
#   components.sh down     stop every component
#   components.sh status   every component: running or not, and its health (exit 1 if any is not
#                          running or not healthy)
#   components.sh list     NAME HEALTH_URL COMMAND, one line each (read by check-compose.py)
# The same list is what docker-compose.yml runs (deploy/local/check-compose.py checks it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/local/lib.sh
source "$here/lib.sh"
# shellcheck source=deploy/local/env.sh
source "$here/env.sh"

SOCLE_BIN="${SOCLE_BIN:-$SOCLE_ROOT/target/debug/socle}"

# NAME|HEALTH URL|socle ARGS, in start order (each waits for the ones above it).
COMPONENTS=(
  "dev-idp|${SOCLE__AUTH__ISSUER}/jwks.json|dev idp"
  "registry|${SOCLE__REGISTRY__URL}/health|registry"
  "ingest|http://${SOCLE__HEALTH__INGEST}/health|ingest run"
  "projector|http://${SOCLE__HEALTH__PROJECTOR}/health|project"
  "feed|http://${SOCLE__HEALTH__FEED}/health|feed"
  "api|http://${SOCLE__API__LISTEN}/health|serve"
  "seal|http://${SOCLE__HEALTH__SEAL}/health|seal run"
  "detect|http://${SOCLE__HEALTH__DETECT}/health|detect run"
  "audit|http://${SOCLE__HEALTH__AUDIT}/health|audit project"
)

field() { cut -d'|' -f"$2" <<<"$1"; }

start_one() {
  local line="$1" name url args
  name="$(field "$line" 1)" url="$(field "$line" 2)" args="$(field "$line" 3)"
  # shellcheck disable=SC2086 # args is a word list
  SOCLE_SUPERVISE=1 "$here/daemon.sh" restart "$name" -- "$SOCLE_BIN" $args
  "$here/wait-http.sh" "$url" "${SOCLE_COMPONENT_WAIT:-90}" "$LOG_DIR/$name.log"
}

cmd_up() {
  [[ -x "$SOCLE_BIN" ]] || die "$SOCLE_BIN not built (cargo build --bin socle)"
  ensure_dirs
  "$SOCLE_BIN" migrate
  # The sealer's signing key, generated into the data folder on first start (never into the
  # checkout); its public key is what `socle audit verify` checks by default.
  if [[ ! -e "$SOCLE__SEAL__PRIVATE_KEY" ]]; then
    "$SOCLE_BIN" seal keygen
  fi
  local line
  for line in "${COMPONENTS[@]}"; do
    start_one "$line"
    # Topics and contracts before anything produces or consumes.
    if [[ "$(field "$line" 1)" == registry ]]; then
      "$SOCLE_BIN" admin topics apply
      "$SOCLE_BIN" admin schemas apply
    fi
  done
}

cmd_down() {
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    "$here/daemon.sh" stop "$(field "${COMPONENTS[$i]}" 1)"
  done
}

cmd_status() {
  local line name url code body rc=0
  printf '%-10s %-8s %-10s %s\n' COMPONENT PROCESS HEALTH DETAIL
  for line in "${COMPONENTS[@]}"; do
    name="$(field "$line" 1)" url="$(field "$line" 2)"
    local process=stopped health=- detail=""
    if "$here/daemon.sh" status "$name" >/dev/null 2>&1; then
      process=running
      body="$(curl -s --max-time 5 -w $'\n%{http_code}' "$url" 2>/dev/null || true)"
      code="${body##*$'\n'}"
      body="${body%$'\n'*}"
      case "$code" in
        2*) health=ready ;;
        000 | "") health=no-answer; detail="$url does not answer"; rc=1 ;;
        *)
          health=not-ready
          # The health document names what fails.
          detail="$(python3 -c 'import json,sys
try:
    d = json.loads(sys.argv[1])
    print("failing: " + ", ".join(d.get("failing", [])) + "; " + "; ".join(
        k + ": " + str(v.get("error")) for k, v in d.get("checks", {}).items() if not v.get("ok")))
except Exception:
    print(sys.argv[1][:200])' "$body")"
          rc=1
          ;;
      esac
    else
      detail="NOT RUNNING (make up starts it; log: $LOG_DIR/$name.log)"
      rc=1
    fi
    printf '%-10s %-8s %-10s %s\n' "$name" "$process" "$health" "$detail"
  done
  return $rc
}

cmd_list() {
  local line
  for line in "${COMPONENTS[@]}"; do
    echo "$(field "$line" 1) $(field "$line" 2) socle $(field "$line" 3)"
  done
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  list) cmd_list ;;
  *) echo "usage: $0 up|down|status|list" >&2; exit 2 ;;
esac
