#!/usr/bin/env bash
# wait-http.sh URL [TIMEOUT_SECONDS] [LOGFILE]
# Poll URL until it answers 2xx (default timeout 60 s). On failure, name the URL and show the
# tail of LOGFILE. If LOGFILE is a daemon.sh log whose process has died, fail at once.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

url="${1:-}"
[[ -n "$url" ]] || { echo "usage: $0 URL [TIMEOUT_SECONDS] [LOGFILE]" >&2; exit 2; }
timeout="${2:-${SOCLE_WAIT_TIMEOUT:-60}}"
logfile="${3:-}"
command -v curl >/dev/null 2>&1 || die "curl missing: run deploy/local/install.sh"

daemon_pid=""
if [[ -n "$logfile" ]]; then
  name="$(basename "$logfile" .log)"
  [[ -f "$RUN_DIR/$name.pid" ]] && daemon_pid="$RUN_DIR/$name.pid"
fi

start=$SECONDS
last=""
while :; do
  last="$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$url" 2>/dev/null || true)"
  if [[ "$last" == 2* ]]; then
    info "$url answers ($((SECONDS - start))s)"
    exit 0
  fi
  if [[ -n "$daemon_pid" ]] && ! pid_alive "$daemon_pid"; then
    [[ -n "$logfile" ]] && show_log_tail "$logfile"
    die "the process behind $url ($name) has exited (log: $logfile)"
  fi
  if ((SECONDS - start >= timeout)); then
    [[ -n "$logfile" ]] && show_log_tail "$logfile"
    die "timeout after ${timeout}s waiting for $url (last answer: $([[ "$last" == 000 || -z "$last" ]] && echo "no connection" || echo "HTTP $last"))${logfile:+ (log: $logfile)}"
  fi
  sleep 0.5
done
