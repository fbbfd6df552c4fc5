# shellcheck shell=bash
# Shared settings and helpers for the deploy/local scripts. Sourced, never run.
# Every value can be overridden from the environment (see example.env).

SOCLE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export SOCLE_ROOT
: "${SOCLE_DATA:=$SOCLE_ROOT/.local}"
: "${SOCLE_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/socle}"
# relative folders are taken from the current directory
[[ "$SOCLE_DATA" == /* ]] || SOCLE_DATA="$PWD/$SOCLE_DATA"
[[ "$SOCLE_CACHE" == /* ]] || SOCLE_CACHE="$PWD/$SOCLE_CACHE"
: "${SOCLE_KAFKA_VERSION:=4.1.1}"
: "${SOCLE_KAFKA_PORT:=9092}"
: "${SOCLE_KAFKA_CONTROLLER_PORT:=9093}"
: "${SOCLE_KAFKA_HEAP:=-Xms256m -Xmx512m}"
: "${SOCLE_PG_PORT:=5432}"
export SOCLE_DATA SOCLE_CACHE SOCLE_KAFKA_VERSION SOCLE_KAFKA_PORT SOCLE_KAFKA_CONTROLLER_PORT \
  SOCLE_KAFKA_HEAP SOCLE_PG_PORT

# shellcheck disable=SC2034 # used by the scripts that source this file
KAFKA_HOME="$SOCLE_CACHE/kafka-$SOCLE_KAFKA_VERSION"
LOG_DIR="$SOCLE_DATA/logs"
RUN_DIR="$SOCLE_DATA/run"

_me="$(basename "$0" .sh)"

die() {
  echo "socle $_me: ERROR: $*" >&2
  exit 1
}

info() {
  echo "socle $_me: $*" >&2
}

ensure_dirs() {
  mkdir -p "$LOG_DIR" "$RUN_DIR" || die "cannot create $LOG_DIR and $RUN_DIR (SOCLE_DATA=$SOCLE_DATA)"
}

# pid_alive PIDFILE [PATTERN]: true if the pid in PIDFILE is a live process whose
# command line contains PATTERN (guards against a stale pid reused by another program).
pid_alive() {
  local pidfile="$1" pattern="${2:-}" pid
  [[ -s "$pidfile" ]] || return 1
  pid="$(cat "$pidfile" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -n "$pattern" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern" || return 1
  fi
  return 0
}

# port_in_use PORT: true if something listens on TCP PORT (any address).
port_in_use() {
  local port="$1"
  if command -v ss >/dev/null 2>&1; then
    [[ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
  fi
}

# port_owner PORT: best-effort description of the process listening on PORT.
port_owner() {
  local port="$1" out
  if command -v ss >/dev/null 2>&1; then
    out="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1)"
    [[ -n "$out" ]] && { echo "$out"; return; }
  fi
  echo "unknown process"
}

# stop_pid PIDFILE NAME DEADLINE_SECONDS: SIGTERM, wait, then SIGKILL. Safe if not running.
stop_pid() {
  local pidfile="$1" name="$2" deadline="$3" pattern="${4:-}" pid i
  if ! pid_alive "$pidfile" "$pattern"; then
    rm -f "$pidfile"
    info "$name is not running"
    return 0
  fi
  pid="$(cat "$pidfile")"
  info "stopping $name (pid $pid)"
  # The whole process group when it is one (daemon.sh starts each under setsid, a supervisor
  # and its child together), else the process alone.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < deadline * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    info "$name did not stop within ${deadline}s, sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -f "$pidfile"
  info "$name stopped"
}

# show_log_tail FILE: print the last lines of a log to help diagnose a failure.
show_log_tail() {
  local file="$1"
  if [[ -s "$file" ]]; then
    echo "---- last 30 lines of $file ----" >&2
    tail -n 30 "$file" >&2
    echo "----" >&2
  fi
}

# lock: serialize start/stop of one service between concurrent callers (held until exit).
lock() {
  exec 9>"$RUN_DIR/$_me.lock"
  flock -w 120 9 || die "another $_me start/stop is still running (lock $RUN_DIR/$_me.lock)"
}
