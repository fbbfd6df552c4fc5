#!/usr/bin/env bash
# The local stack: PostgreSQL and Kafka.
#   stack.sh up              install what is missing, start both, wait until both answer
#   stack.sh down [--purge]  stop socle daemons, Kafka and PostgreSQL; --purge also deletes $SOCLE_DATA
#   stack.sh status
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/local/lib.sh
source "$here/lib.sh"

cmd_up() {
  local start=$SECONDS
  "$here/install.sh"
  "$here/postgres.sh" start
  "$here/kafka.sh" start
  "$here/postgres.sh" wait
  "$here/kafka.sh" wait
  info "stack up in $((SECONDS - start))s: kafka localhost:$SOCLE_KAFKA_PORT, postgres localhost:$SOCLE_PG_PORT (logs in $LOG_DIR)"
}

purge() {
  local d="$SOCLE_DATA" target=""
  [[ -e "$d" ]] || { info "nothing to purge ($d does not exist)"; return 0; }
  # refuse to delete a folder that is not ours
  case "$(cd "$d" && pwd -P)" in
    / | "$HOME" | "$SOCLE_ROOT") die "refusing to purge SOCLE_DATA=$d" ;;
  esac
  [[ -d "$d/logs" || -d "$d/run" || -e "$d/kafka" || -e "$d/pg" ]] ||
    die "refusing to purge $d: it does not look like socle's data folder"
  [[ -L "$d/pg" ]] && target="$(readlink -f "$d/pg")"
  [[ -n "$target" && "$target" == /var/tmp/socle-pg-* ]] && rm -rf "$target"
  rm -rf "$d"
  info "purged $d"
}

cmd_down() {
  local do_purge=0
  case "${1:-}" in
    "") ;;
    --purge) do_purge=1 ;;
    *) echo "usage: $0 down [--purge]" >&2; exit 2 ;;
  esac
  "$here/daemon.sh" stop --all
  "$here/kafka.sh" stop
  "$here/postgres.sh" stop
  ((do_purge)) && purge
  return 0
}

cmd_status() {
  local rc=0
  "$here/postgres.sh" status || rc=1
  "$here/kafka.sh" status || rc=1
  "$here/daemon.sh" status
  return $rc
}

case "${1:-}" in
  up) cmd_up ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down [--purge]|status" >&2; exit 2 ;;
esac
