#!/usr/bin/env bash
# bench.sh: loopback benchmarks of luastrands against a gorilla/websocket
# baseline (wsecho), with the shared load generator wsload
# (../shared/wsload, see its README).
#
# What it measures (each figure is the median of $RUNS runs, default 3):
#   (a) pingpong: 100 clients, each with one 64-byte message in flight, for
#       10 s after a 2 s warmup, against `luastrands serve examples/echo.lua`
#       and against `wsecho` (echo mode). Reports round trips per second,
#       p50/p99 latency (ms) and the server's CPU time per round trip (µs,
#       user+sys of the server process inside the measured window, divided by
#       the round trips counted in that window).
#   (b) conns: N idle connections opened against a freshly started
#       luastrands (N = 1000, and 19000 if the fd limit allows), held 5 s.
#       Reports KiB of server RSS per idle connection (VmRSS after - before,
#       divided by the connections open).
#   (c) fanout: 1000 subscribers on one room path, one publisher at 100
#       messages/s (= 100,000 deliveries/s expected) for 10 s, against
#       luastrands with a room-broadcast script and `wsecho -mode room`.
#       Reports deliveries/s, loss %, p50/p99 (ms) and server CPU µs per
#       delivery.
#
# Servers that are compared run alternately (A1 B1 A2 B2 A3 B3), each run
# on a freshly started server, so drift in the machine load hits both.
#
# How to read it: on the 2-core box the client (wsload) and the server each
# take about one core in (a) and (c), so rt/s is bounded by the generator as
# much as by the server; compare servers by the CPU-µs columns first (lower
# is better), and by rt/s / latency only between servers run here with the
# same flags. "errors"/"loss" must be 0 for a figure to mean anything.
#
# Usage:  scripts/bench.sh                (from anywhere; builds what is missing)
# Env:    LUASTRANDS_BIN=path     use this binary instead of the release build
#         SWIFT_BUILD_ARGS="..."  extra swift build flags (e.g. --scratch-path /tmp/bench-build)
#         WSLOAD_DIR=/tmp/wsload  where wsload/wsecho are (built if missing)
#         RUNS=3 DURATION=10s     repetitions and measured window
#         SKIP_BIG_CONNS=1        skip the 19000-connection run
# Output: a summary table on stdout; raw wsload reports and RESULT lines in
#         out/bench/<timestamp>/ (results.txt holds every RESULT line, tagged).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
RUNS="${RUNS:-3}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
WSLOAD_DIR="${WSLOAD_DIR:-/tmp/wsload}"
SHARED="${SHARED:-$ROOT/../shared}"
STAMP="$(date +%Y%m%d-%H%M%S)"
OUT="$ROOT/out/bench/$STAMP"
mkdir -p "$OUT"
RESULTS="$OUT/results.txt"
: >"$RESULTS"

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

# ---- the tools ---------------------------------------------------------------

if [[ -n "${LUASTRANDS_BIN:-}" ]]; then
  LS_BIN="$LUASTRANDS_BIN"
else
  # shellcheck disable=SC2086
  BIN_DIR="$(swift build -c release --show-bin-path ${SWIFT_BUILD_ARGS:-})"
  LS_BIN="$BIN_DIR/luastrands"
  if [[ ! -x "$LS_BIN" ]]; then
    log "building the release binary (swift build -c release --product luastrands ${SWIFT_BUILD_ARGS:-})"
    # shellcheck disable=SC2086
    swift build -c release --product luastrands ${SWIFT_BUILD_ARGS:-} >&2
  fi
fi
[[ -x "$LS_BIN" ]] || die "no luastrands binary at $LS_BIN"

if [[ ! -x "$WSLOAD_DIR/bin/wsload" || ! -x "$WSLOAD_DIR/bin/wsecho" ]]; then
  if ! command -v go >/dev/null 2>&1 || [[ ! -f /usr/share/gocode/src/github.com/gorilla/websocket/go.mod ]]; then
    log "installing golang-go and golang-github-gorilla-websocket-dev"
    apt-get update -qq >&2 && apt-get install -y -qq golang-go golang-github-gorilla-websocket-dev >&2
  fi
  [[ -x "$SHARED/wsload/build.sh" || -f "$SHARED/wsload/build.sh" ]] || die "missing $SHARED/wsload/build.sh"
  sh "$SHARED/wsload/build.sh" "$WSLOAD_DIR" >&2
fi
WSLOAD="$WSLOAD_DIR/bin/wsload"
WSECHO="$WSLOAD_DIR/bin/wsecho"

# Raise the fd limit for everything started from here (servers inherit it).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT="$(ulimit -n)"

# ---- servers -----------------------------------------------------------------

SERVER_PID=""
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {  # wait until something accepts on 127.0.0.1:$1 (20 s max)
  local i
  for i in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if [[ -n "$SERVER_PID" ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then return 1; fi
    sleep 0.1
  done
  return 1
}
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT

PORT=""
start_luastrands() {  # start_luastrands SCRIPT NAME
  PORT="$(free_port)"
  "$LS_BIN" serve "$1" --host 127.0.0.1 --port "$PORT" --no-watch --log-level warn \
    2>>"$OUT/$2.server.log" >&2 &
  SERVER_PID=$!
  wait_port "$PORT" || { cat "$OUT/$2.server.log" >&2; die "luastrands did not start"; }
}
start_wsecho() {  # start_wsecho MODE NAME
  PORT="$(free_port)"
  "$WSECHO" -mode "$1" -addr "127.0.0.1:$PORT" 2>>"$OUT/$2.server.log" >&2 &
  SERVER_PID=$!
  wait_port "$PORT" || die "wsecho did not start"
}

# ---- measurements ------------------------------------------------------------

secs() {  # "10s" / "1500ms" -> seconds
  case "$1" in
    *ms) awk -v v="${1%ms}" 'BEGIN{print v/1000}' ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}
DUR_S="$(secs "$DURATION")"

# Runs wsload (bounded), keeps the report, prints "RESULT ... server_cpu_s=X".
run_wsload() {  # run_wsload TAG BOUND_SECONDS ARGS...
  local tag="$1" bound="$2"; shift 2
  local file="$OUT/$tag.txt"
  local t0 t1
  t0="$(proc_cpu "$SERVER_PID")"
  timeout --kill-after=10 "$bound" "$WSLOAD" "$@" >"$file" 2>&1 || log "wsload $tag exited $? (see $file)"
  t1="$(proc_cpu "$SERVER_PID")"
  local result cpu
  result="$(awk '/^RESULT/' "$file" | tail -1)"
  [[ -n "$result" ]] || result="RESULT none"
  # server CPU in the measured window, from wsload's "server cpu" line;
  # else the whole-run delta from /proc/PID/stat.
  cpu="$(sed -n 's/^server cpu.*window \([0-9.]*\)s.*/\1/p' "$file" | tail -1)"
  [[ -n "$cpu" ]] || cpu="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
  echo "$tag $result server_cpu_s=$cpu" | tee -a "$RESULTS" >&2
  echo "$result server_cpu_s=$cpu"
}
proc_cpu() {  # utime+stime of PID in seconds
  local hz; hz="$(getconf CLK_TCK)"
  awk -v hz="$hz" '{sub(/^.*\) /,""); print ($12+$13)/hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2"; }
median() { printf '%s\n' "$@" | grep -E '^[0-9.eE+-]+$' | sort -g | awk '{a[NR]=$1} END{if(NR==0){print "n/a"} else if(NR%2){print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

SUMMARY=()
add_row() { SUMMARY+=("$(printf '%-34s %s' "$1" "$2")"); }

# Servers of a comparison are run alternately (A1 B1 A2 B2 ...), each run on
# a freshly started server, so drift in the machine's load hits both alike.
start_server() {  # start_server luastrands|wsecho MODE SCRIPT NAME
  case "$1" in
    luastrands) start_luastrands "$3" "$4" ;;
    wsecho) start_wsecho "$2" "$4" ;;
  esac
}

us_per_op() {  # us_per_op CPU_SECONDS RATE_PER_S DECIMALS: server CPU µs per operation in the window
  awk -v c="$1" -v n="$2" -v d="$DUR_S" -v p="$3" \
    'BEGIN{ if (n>0) printf "%.*f", p, c*1e6/(n*d); else print "n/a" }'
}

declare -A PP_RPS PP_P50 PP_P99 PP_US PP_ERR
pingpong_run() {  # pingpong_run NAME RUN (server already started)
  local name="$1" i="$2" r
  r="$(run_wsload "pingpong-$name-$i" 60 pingpong -url "ws://127.0.0.1:$PORT/bench" \
       -clients 100 -duration "$DURATION" -warmup "$WARMUP" -payload 64 -pid "$SERVER_PID")"
  PP_RPS[$name]+=" $(field rps "$r")"; PP_P50[$name]+=" $(field p50_ms "$r")"
  PP_P99[$name]+=" $(field p99_ms "$r")"; PP_ERR[$name]+=" $(field errors "$r")"
  PP_US[$name]+=" $(us_per_op "$(field server_cpu_s "$r")" "$(field rps "$r")" 2)"
}
pingpong_row() {  # pingpong_row NAME
  local n="$1"
  # shellcheck disable=SC2086
  add_row "pingpong $n" "rt/s $(median ${PP_RPS[$n]})  p50 $(median ${PP_P50[$n]}) ms  p99 $(median ${PP_P99[$n]}) ms  server $(median ${PP_US[$n]}) µs/rt  errors${PP_ERR[$n]}"
}

declare -A FO_DPS FO_LOSS FO_P50 FO_P99 FO_US
fanout_run() {  # fanout_run NAME RUN (server already started)
  local name="$1" i="$2" r
  r="$(run_wsload "fanout-$name-$i" 90 fanout -url "ws://127.0.0.1:$PORT/room$i" \
       -subscribers 1000 -rate 100 -duration "$DURATION" -warmup "$WARMUP" -payload 64 \
       -pid "$SERVER_PID")"
  FO_DPS[$name]+=" $(field deliveries_per_s "$r")"; FO_LOSS[$name]+=" $(field loss_pct "$r")"
  FO_P50[$name]+=" $(field p50_ms "$r")"; FO_P99[$name]+=" $(field p99_ms "$r")"
  FO_US[$name]+=" $(us_per_op "$(field server_cpu_s "$r")" "$(field deliveries_per_s "$r")" 3)"
}
fanout_row() {  # fanout_row NAME
  local n="$1"
  # shellcheck disable=SC2086
  add_row "fanout 1000x100/s $n" "deliv/s $(median ${FO_DPS[$n]})  loss${FO_LOSS[$n]} %  p50 $(median ${FO_P50[$n]}) ms  p99 $(median ${FO_P99[$n]}) ms  server $(median ${FO_US[$n]}) µs/delivery"
}

conns() {  # conns N  (a fresh luastrands per run)
  local n="$1" i r kib=() ok=() cs=()
  for i in $(seq 1 "$RUNS"); do
    start_luastrands "$ROOT/examples/echo.lua" "conns-$n"
    r="$(run_wsload "conns-$n-$i" 120 conns -url "ws://127.0.0.1:$PORT/idle" -n "$n" -rate 2000 \
         -hold 5s -pid "$SERVER_PID")"
    stop_server
    kib+=("$(field kib_per_conn "$r")"); ok+=("$(field connected "$r")"); cs+=("$(field connect_s "$r")")
  done
  add_row "conns $n idle (luastrands)" "$(median "${kib[@]}") KiB/conn  connected ${ok[*]}  connect_s $(median "${cs[@]}")"
}

log "luastrands: $LS_BIN; wsload: $WSLOAD; runs: $RUNS x $DURATION; fd limit $FD_LIMIT; output $OUT"

# (a) pingpong
for i in $(seq 1 "$RUNS"); do
  start_server luastrands - "$ROOT/examples/echo.lua" pingpong-luastrands
  pingpong_run luastrands "$i"
  stop_server
  start_server wsecho echo - pingpong-wsecho
  pingpong_run wsecho "$i"
  stop_server
done
pingpong_row luastrands
pingpong_row wsecho

# (b) idle connections
conns 1000
if [[ -z "${SKIP_BIG_CONNS:-}" ]]; then
  if (( FD_LIMIT >= 19500 )); then
    conns 19000
  else
    add_row "conns 19000 idle (luastrands)" "skipped: fd limit $FD_LIMIT < 19500"
  fi
fi

# (c) fanout through a room
ROOM_SCRIPT="$OUT/room.lua"
cat >"$ROOM_SCRIPT" <<'LUA'
-- every message to everyone in the sender's room (the URL path), sender included
function on_message(message, context, is_binary)
  strands.send_room_message(context.room_id, message, { binary = is_binary })
end
LUA
for i in $(seq 1 "$RUNS"); do
  start_server luastrands - "$ROOM_SCRIPT" fanout-luastrands
  fanout_run luastrands "$i"
  stop_server
  start_server wsecho room - fanout-wsecho
  fanout_run wsecho "$i"
  stop_server
done
fanout_row luastrands
fanout_row wsecho

{
  echo
  echo "== luastrands bench $STAMP ($(nproc) cores; medians of $RUNS runs; raw reports in ${OUT#"$ROOT"/}) =="
  printf '%s\n' "${SUMMARY[@]}"
} | tee "$OUT/summary.txt"
