#!/usr/bin/env bash
# Run socle's own processes in the background, one pid file and one log per NAME.
#   daemon.sh start NAME -- CMD [ARGS...]   start CMD (no-op if NAME is already running)
#   daemon.sh restart NAME -- CMD [ARGS...] stop, then start (picks up a rebuilt binary)
#     Either, with SOCLE_SUPERVISE=1: CMD runs under a supervisor that starts it again whenever
#     it exits (crash, kill -9, error), after 1 s then doubling up to 30 s while it keeps failing
#     within 60 s of its start; each restart is logged. Stopping NAME stops both.
#   daemon.sh stop NAME|--all               SIGTERM, then SIGKILL after $SOCLE_DAEMON_STOP_TIMEOUT s (default 15)
#   daemon.sh status [NAME]                 exit 0 if NAME runs (without NAME: list all)
# Pid files: $SOCLE_DATA/run/NAME.pid, logs: $SOCLE_DATA/logs/NAME.log.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  echo "usage: $0 start|restart NAME -- CMD [ARGS...] | stop NAME|--all | status [NAME]" >&2
  exit 2
}

check_name() {
  [[ "${1:-}" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "invalid daemon name '${1:-}' (letters, digits, . _ -)"
}

pidfile() { echo "$RUN_DIR/$1.pid"; }
# The pid must still belong to the command we started (pids get reused).
pattern() { cat "$RUN_DIR/$1.cmd0" 2>/dev/null || true; }
running() { pid_alive "$(pidfile "$1")" "$(pattern "$1")"; }

cmd_start() {
  local name="${1:-}"
  check_name "$name"
  shift
  [[ "${1:-}" == -- ]] && shift
  (($# > 0)) || usage
  ensure_dirs
  local log="$LOG_DIR/$name.log"
  if running "$name"; then
    info "$name already running (pid $(cat "$(pidfile "$name")")), log: $log"
    return 0
  fi
  command -v "$1" >/dev/null 2>&1 || die "cannot start $name: command not found: $1"
  echo "$1" >"$RUN_DIR/$name.cmd0"
  echo "==== $(date -Is) daemon.sh start $name: $*" >>"$log"
  rm -f "$(pidfile "$name")"
  if [[ "${SOCLE_SUPERVISE:-0}" == 1 ]]; then
    # The supervisor is the process group leader: stop signals the whole group.
    # shellcheck disable=SC2016 # expanded in the child shell
    setsid bash -c '
      echo $$ >"$1"
      shift
      stopping=0
      trap "stopping=1; kill -TERM \$child 2>/dev/null" TERM INT
      delay=1
      while :; do
        started=$SECONDS
        "$@" &
        child=$!
        wait $child; rc=$?
        # wait returns early when a trapped signal arrives: wait for the child itself.
        while kill -0 $child 2>/dev/null; do wait $child; rc=$?; done
        ((stopping)) && exit 0
        if ((SECONDS - started >= 60)); then delay=1; fi
        echo "==== $(date -Is) supervisor: exited with status $rc, restarting in ${delay}s"
        sleep $delay &
        wait $!
        ((stopping)) && exit 0
        ((delay = delay * 2 > 30 ? 30 : delay * 2))
      done' "supervisor[$name]" "$(pidfile "$name")" "$@" </dev/null >>"$log" 2>&1 &
  else
    # shellcheck disable=SC2016 # $$ and $@ expand in the child shell
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$(pidfile "$name")" "$@" </dev/null >>"$log" 2>&1 &
  fi
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s "$(pidfile "$name")" ]] && break
    sleep 0.1
  done
  sleep 0.3
  running "$name" || { show_log_tail "$log"; die "$name exited right after start (log: $log)"; }
  info "$name started (pid $(cat "$(pidfile "$name")")), log: $log"
}

cmd_stop() {
  local name="${1:-}"
  if [[ "$name" == --all ]]; then
    local f
    for f in "$RUN_DIR"/*.cmd0; do
      [[ -e "$f" ]] || continue
      cmd_stop "$(basename "$f" .cmd0)"
    done
    return 0
  fi
  check_name "$name"
  stop_pid "$(pidfile "$name")" "$name" "${SOCLE_DAEMON_STOP_TIMEOUT:-15}" "$(pattern "$name")"
  rm -f "$RUN_DIR/$name.cmd0"
}

cmd_status() {
  local name="${1:-}"
  if [[ -z "$name" ]]; then
    local f found=0
    for f in "$RUN_DIR"/*.cmd0; do
      [[ -e "$f" ]] || continue
      found=1
      cmd_status "$(basename "$f" .cmd0)" || true
    done
    ((found)) || echo "no socle daemons"
    return 0
  fi
  check_name "$name"
  if running "$name"; then
    echo "$name: running (pid $(cat "$(pidfile "$name")")), log: $LOG_DIR/$name.log"
  else
    echo "$name: stopped"
    return 3
  fi
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  restart) shift; cmd_stop "${1:-}"; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) shift; cmd_status "$@" ;;
  *) usage ;;
esac
