#!/usr/bin/env bash
# Zero-downtime upgrade under load (SPEC §9), the way systemd's ExecReload does it:
#
#   1. a mock upstream (python3 stdlib) and the gateway in daemon mode (-d);
#   2. a load generator: CONCURRENCY workers posting chat requests to the
#      gateway, each on a fresh connection (KEEPALIVE=1: one persistent
#      connection per worker that, like the urllib3 / httpcore pools of the
#      Python SDKs, is not reused once the server has closed it; KEEPALIVE=raw:
#      reused blindly, as bare http.client does);
#   3. mid-load: SIGQUIT to the running gateway, then a new one with -u -d,
#      which takes the listening sockets over through server.upgrade_sock;
#   4. the load goes on until the old process has finished its grace period
#      and exited, plus a second; then it stops and the failures are counted.
#
# Prints one summary line: "upgrade: N requests, F failed, ..." and exits 1 when
# F > MAX_FAILED (default 0). Loopback only; every request loop is bounded by
# count (MAX_REQUESTS) and time; everything started here is stopped by PID on
# exit. Takes about 15 s.
#
# Usage: tests/upgrade.sh            (builds target/debug/free-llm-proxy if missing)
#   FREE_LLM_PROXY_BIN=target/release/free-llm-proxy tests/upgrade.sh
#   CONCURRENCY=8 MAX_REQUESTS=50000 KEEPALIVE=1 MAX_FAILED=0 tests/upgrade.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${FREE_LLM_PROXY_BIN:-$ROOT/target/debug/free-llm-proxy}"
CONCURRENCY="${CONCURRENCY:-8}"
MAX_REQUESTS="${MAX_REQUESTS:-50000}"
MAX_FAILED="${MAX_FAILED:-0}"
KEEPALIVE="${KEEPALIVE:-0}"
# The whole run stops by itself after this many seconds, whatever happens.
HARD_LIMIT_SECS=55

if [ ! -x "$BIN" ]; then
    echo "upgrade.sh: building $BIN" >&2
    (cd "$ROOT" && cargo build --quiet)
fi
command -v python3 >/dev/null || { echo "upgrade.sh: needs python3" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/free-llm-proxy-upgrade.XXXXXX")"
# Every process this script started, stopped by PID on exit: helpers (python,
# started with &, so SIGINT is ignored in them) by SIGTERM, gateways by SIGINT
# (Pingora's fast shutdown; SIGTERM would wait for the grace period).
HELPER_PIDS=()
GATEWAY_PIDS=()
SCRIPT_START=$(date +%s)

stop_pid() { # pid signal: signal, wait up to 3 s, then SIGKILL
    local pid="$1" sig="$2" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for i in $(seq 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local pid f
    # The daemons' PIDs come from their pid files.
    for f in "$WORK/gateway.pid" "$WORK/gateway.pid.old"; do
        if [ -s "$f" ]; then GATEWAY_PIDS+=("$(cat "$f")"); fi
    done
    for pid in "${GATEWAY_PIDS[@]}"; do stop_pid "$pid" INT; done
    for pid in "${HELPER_PIDS[@]}"; do stop_pid "$pid" TERM; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT  # so that the EXIT trap runs when the script is stopped

elapsed() { echo $(( $(date +%s) - SCRIPT_START )); }
check_time() {
    if [ "$(elapsed)" -ge "$HARD_LIMIT_SECS" ]; then
        echo "upgrade.sh: gave up after ${HARD_LIMIT_SECS}s ($1)" >&2
        exit 3
    fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

MOCK_PORT=$(free_port); GW_PORT=$(free_port); METRICS_PORT=$(free_port)
while [ "$GW_PORT" = "$MOCK_PORT" ] || [ "$METRICS_PORT" = "$GW_PORT" ] || [ "$METRICS_PORT" = "$MOCK_PORT" ]; do
    GW_PORT=$(free_port); METRICS_PORT=$(free_port)
done

# ---- mock upstream: the model list and instant chat completions ------------
cat >"$WORK/mock.py" <<'PY'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LIST = open(sys.argv[2], "rb").read()

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive towards the gateway's pool
    # Head and body are two writes: with Nagle, the body would wait for a delayed
    # ACK (40 ms) on every reused connection.
    disable_nagle_algorithm = True

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(200, LIST) if self.path.startswith("/top-models") else self.reply(404, b"{}")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        model = json.loads(self.rfile.read(length) or b"{}").get("model", "?")
        body = json.dumps({"id": "up-1", "object": "chat.completion", "created": 0, "model": model,
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": "ok"}}]}).encode()
        self.reply(200, body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 256  # the default 5 drops SYNs under load
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
python3 "$WORK/mock.py" "$MOCK_PORT" "$ROOT/conf/embedded-top-models.json" &
HELPER_PIDS+=($!)

# ---- gateway config -------------------------------------------------------
cat >"$WORK/config.yaml" <<YAML
listen: "127.0.0.1:$GW_PORT"
metrics_listen: "127.0.0.1:$METRICS_PORT"
server:
  threads: 2
  pid_file: "$WORK/gateway.pid"
  upgrade_sock: "$WORK/upgrade.sock"
  grace_period_seconds: 2
  graceful_shutdown_timeout_seconds: 2
upstream:
  base_url: "http://127.0.0.1:$MOCK_PORT/api/v1"
  api_keys: ["sk-or-upgrade-test-0001"]
  timeout_secs: 10
models:
  source_url: "http://127.0.0.1:$MOCK_PORT/top-models"
YAML
"$BIN" --check --config "$WORK/config.yaml" >/dev/null

http_ok() { # port path -> 0 when it answers 200
    python3 - "$1" "$2" <<'PY'
import http.client, sys
try:
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
    c.request("GET", sys.argv[2]); sys.exit(0 if c.getresponse().status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}
wait_pid_file() { # file old_pid -> prints the new pid once the file names another live one
    local pid
    while :; do
        check_time "waiting for $1"
        pid="$(cat "$1" 2>/dev/null || true)"
        if [ -n "$pid" ] && [ "$pid" != "$2" ] && kill -0 "$pid" 2>/dev/null; then
            echo "$pid"; return 0
        fi
        sleep 0.05
    done
}

# ---- old gateway, daemonized ---------------------------------------------------
RUST_LOG=warn "$BIN" -d --config "$WORK/config.yaml" >>"$WORK/gateway.log" 2>&1
OLD_PID="$(wait_pid_file "$WORK/gateway.pid" none)"
GATEWAY_PIDS+=("$OLD_PID")
until http_ok "$GW_PORT" /health; do check_time "old gateway start"; sleep 0.05; done

# ---- load -------------------------------------------------------------------
cat >"$WORK/load.py" <<'PY'
import http.client, json, os, select, sys, threading, time

port, workers, max_requests, mode, stop_file, deadline = (
    int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
    sys.argv[5], time.time() + float(sys.argv[6]))
keepalive, stale_check = mode in ("1", "raw"), mode == "1"
body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
headers = {"Content-Type": "application/json"}
if not keepalive:
    headers["Connection"] = "close"
lock = threading.Lock()
stats = {"requests": 0, "failed": 0, "errors": {}, "max_latency_ms": 0}

def one(conn):
    start = time.time()
    if stale_check and conn is not None and conn.sock is not None \
            and select.select([conn.sock], [], [], 0)[0]:
        # Like urllib3 / httpcore pools: an idle connection the server has closed
        # (readable at EOF) is not reused.
        conn.close()
        conn = None
    try:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        ok = response.status == 200 and b'"ok"' in data
        why = None if ok else f"HTTP {response.status}"
        if not keepalive or response.will_close:
            conn.close(); conn = None
    except Exception as e:  # a refused, reset or broken connection is a failed request
        ok, why = False, type(e).__name__
        if conn is not None:
            conn.close()
        conn = None
    latency = int((time.time() - start) * 1000)
    with lock:
        stats["requests"] += 1
        stats["max_latency_ms"] = max(stats["max_latency_ms"], latency)
        if not ok:
            stats["failed"] += 1
            stats["errors"][why] = stats["errors"].get(why, 0) + 1
    return conn

def worker():
    conn = None
    while time.time() < deadline and not os.path.exists(stop_file):
        with lock:
            if stats["requests"] >= max_requests:
                return
        conn = one(conn)

threads = [threading.Thread(target=worker) for _ in range(workers)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(stats))
PY
LOAD_SECS=$(( HARD_LIMIT_SECS - $(elapsed) - 5 ))
python3 "$WORK/load.py" "$GW_PORT" "$CONCURRENCY" "$MAX_REQUESTS" "$KEEPALIVE" \
    "$WORK/stop" "$LOAD_SECS" >"$WORK/load.json" &
LOAD_PID=$!
HELPER_PIDS+=("$LOAD_PID")
sleep 1

# ---- the upgrade, as ExecReload does it --------------------------------------
UPGRADE_START=$(date +%s.%N)
kill -QUIT "$OLD_PID"
RUST_LOG=warn "$BIN" -u -d --config "$WORK/config.yaml" >>"$WORK/gateway.log" 2>&1
NEW_PID="$(wait_pid_file "$WORK/gateway.pid" "$OLD_PID")"
GATEWAY_PIDS+=("$NEW_PID")
# The old process keeps accepting for 5 s next to the new one, then serves what
# it holds for grace_period_seconds, then exits.
while kill -0 "$OLD_PID" 2>/dev/null; do check_time "old gateway exit"; sleep 0.1; done
HANDOVER_SECS=$(python3 -c "import time; print(round(time.time() - $UPGRADE_START, 1))")
sleep 1
touch "$WORK/stop"
wait "$LOAD_PID" || true

# ---- verdict ------------------------------------------------------------------
if ! kill -0 "$NEW_PID" 2>/dev/null; then
    echo "upgrade.sh: the new gateway ($NEW_PID) is not running; log:" >&2
    cat "$WORK/gateway.log" >&2
    exit 1
fi
# The new process really served: its own counters are non-zero.
SERVED_BY_NEW=$(python3 - "$METRICS_PORT" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
c.request("GET", "/metrics")
text = c.getresponse().read().decode()
print(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
          if l.startswith("freellm_requests_total{") and 'route="chat_completions"' in l
          and 'status="200"' in l))
PY
)
read -r REQUESTS FAILED ERRORS LATENCY < <(python3 - "$WORK/load.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(s["requests"], s["failed"], json.dumps(s["errors"], separators=(",", ":")), s["max_latency_ms"])
PY
)
case "$KEEPALIVE" in
    1) MODE="keep-alive, pool-style" ;;
    raw) MODE="keep-alive, reused blindly" ;;
    *) MODE="new connection per request" ;;
esac
echo "upgrade: $REQUESTS requests, $FAILED failed ($MODE, concurrency $CONCURRENCY;" \
     "errors $ERRORS; max latency ${LATENCY} ms; old pid $OLD_PID -> new pid $NEW_PID;" \
     "old exited ${HANDOVER_SECS}s after SIGQUIT; new process served ${SERVED_BY_NEW%.*} requests;" \
     "total $(elapsed)s)"
if [ "$FAILED" -gt "$MAX_FAILED" ]; then
    echo "upgrade.sh: $FAILED failed requests (allowed: $MAX_FAILED); gateway log:" >&2
    tail -n 50 "$WORK/gateway.log" >&2
    exit 1
fi
if [ "${SERVED_BY_NEW%.*}" -lt 1 ]; then
    echo "upgrade.sh: the new process served no request" >&2
    exit 1
fi
