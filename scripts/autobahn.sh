#!/usr/bin/env bash
# autobahn.sh: the Autobahn|Testsuite conformance run (../shared/autobahn)
# against `luastrands serve examples/echo.lua` (text echoed as text, binary
# as binary).
#
# By default it runs every case except the permessage-deflate ones (12.*,
# 13.*, which LuaStrands does not negotiate), about 300 cases, and exits 1
# if any case is FAILED. The 9.* cases send messages of up to 16 MiB, so the
# broker runs with --max-message-size 64M, as the suite expects.
#
# Usage:  scripts/autobahn.sh             (make autobahn)
# Env:    LUASTRANDS_BIN=path      binary to test (default: the debug build)
#         AUTOBAHN_CASES="1.* 2.*" case patterns to run (default: all but 12.*, 13.*)
#         AUTOBAHN_ALL=1           include the compression cases (reported UNIMPLEMENTED)
#         SHARED_DIR=path          where autobahn/ is (default: ../shared beside the repo)
#         AUTOBAHN_HOME=path       where the suite is unpacked (default: .build/autobahn)
# Output: out/autobahn/ (report/index.html, a page per case, summary.txt,
#         broker.log); the last line is the suite's own summary.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
SHARED_DIR="${SHARED_DIR:-$REPO/../shared}"
KIT="$SHARED_DIR/autobahn"
[ -x "$KIT/run" ] || { echo "autobahn: no conformance kit at $KIT (set SHARED_DIR)" >&2; exit 2; }
BIN="${LUASTRANDS_BIN:-$(swift build --show-bin-path)/luastrands}"
[ -x "$BIN" ] || { echo "autobahn: no binary at $BIN (run make build)" >&2; exit 2; }
export AUTOBAHN_HOME="${AUTOBAHN_HOME:-$REPO/.build/autobahn}"
OUT="$REPO/out/autobahn"
mkdir -p "$OUT"

"$BIN" serve examples/echo.lua --host 127.0.0.1 --port 0 --no-watch \
    --max-message-size 64M >"$OUT/broker.log" 2>&1 &
PID=$!
stop_broker() { kill -TERM "$PID" 2>/dev/null || true; }
trap stop_broker EXIT
PORT=""
for _ in $(seq 1 200); do
    PORT="$(sed -n 's/.*listening on ws:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$OUT/broker.log" | head -1)"
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || { echo "autobahn: the broker exited:" >&2; cat "$OUT/broker.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$PORT" ] || { echo "autobahn: the broker did not start listening" >&2; cat "$OUT/broker.log" >&2; exit 1; }

ARGS=(--agent luastrands --fail-on-failed --timeout 900)
if [ -n "${AUTOBAHN_CASES:-}" ]; then
    ARGS+=(--cases "$AUTOBAHN_CASES")
elif [ -z "${AUTOBAHN_ALL:-}" ]; then
    ARGS+=(--no-compression)
fi
STATUS=0
"$KIT/run" "ws://127.0.0.1:$PORT/autobahn" "$OUT" "${ARGS[@]}" >"$OUT/run.txt" 2>&1 || STATUS=$?

# The broker must have come through the whole suite and still shut down cleanly.
trap - EXIT
if ! kill -0 "$PID" 2>/dev/null; then
    echo "autobahn: the broker died during the run; its log:" >&2; tail -20 "$OUT/broker.log" >&2; exit 1
fi
kill -TERM "$PID"
BROKER_STATUS=0
wait "$PID" || BROKER_STATUS=$?

# The cases that are not plain OK, with the reason the suite gives.
python3 - "$OUT/report/index.json" <<'PY' || true
import json, sys
index = json.load(open(sys.argv[1]))
for agent, cases in index.items():
    odd = {c: r for c, r in cases.items() if r.get("behavior") != "OK"}
    for case in sorted(odd, key=lambda c: [int(p) if p.isdigit() else p for p in c.split(".")]):
        print(f"  {case}: {odd[case]['behavior']} (close: {odd[case].get('behaviorClose')})")
PY
grep -E "^(FAILED|NON-STRICT|UNIMPLEMENTED)" "$OUT/summary.txt" || true
tail -1 "$OUT/run.txt"
[ "$BROKER_STATUS" -eq 0 ] || { echo "autobahn: the broker exited $BROKER_STATUS after SIGTERM" >&2; exit 1; }
exit "$STATUS"
