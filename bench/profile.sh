#!/usr/bin/env bash
# bench/profile.sh: profile the gateway's hot path against the static nginx mock.
#
#   bench/profile.sh perf       perf record (cpu-clock, DWARF call graphs) of the gateway
#                               under wrk c=64 with the ~2 KiB request: self and inclusive
#                               time by function -> bench/results/perf-*.txt
#   bench/profile.sh callgrind  instructions per request (valgrind --tool=callgrind, counters
#                               zeroed after a warm-up), gateway and the nginx proxy side by
#                               side (WHO="gateway nginx pingora" adds bench/pingora-floor)
#                               -> bench/results/callgrind-*.txt
#   bench/profile.sh syscalls   system calls per request (strace -c -f) -> results/strace-*.txt
#   bench/profile.sh fallback   instructions per request (callgrind) through bench/mock with
#                               rank-1 answering, then with rank-1 cooling after one 429
#                               (Retry-After: 3600): the fallback's cost without timing noise
#   bench/profile.sh cpu        the gateway's own CPU time per request (user + sys, from
#                               /proc) under wrk c=$CONC for $DURATION s: an A/B figure for
#                               two builds that other load on the machine disturbs little
#
# Knobs: GATEWAY_BIN (default target/release/free-llm-proxy), BODY=2k|200k, STREAM=1
# (profile streams instead), N (requests, callgrind/strace: 2000), DURATION (perf: 8 s).
# Everything it starts is stopped by PID on exit. Loopback only.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
MODE=${1:-perf}
GATEWAY_BIN=${GATEWAY_BIN:-$REPO/target/release/free-llm-proxy}
BODY=${BODY:-2k}
N=${N:-2000}
DURATION=${DURATION:-8}
STREAM=${STREAM:-0}
OUT=${OUT:-$BENCH_DIR/results}
mkdir -p "$OUT"
[[ -x $GATEWAY_BIN ]] || { echo "no gateway binary at $GATEWAY_BIN (cargo build --release)" >&2; exit 1; }

T=$(mktemp -d /tmp/fllp-prof.XXXXXX)
PIDS=()
cleanup() {
    local rc=$? pid
    # Pingora and nginx stop fast on SIGINT (a background job's SIGINT is ignored unless
    # the program installs a handler, as both do); anything else gets SIGTERM.
    for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { for _ in $(seq 600); do curl -s -o /dev/null -m 1 "$1" && return 0; sleep 0.1; done; echo "nothing at $1" >&2; exit 1; }
read -r P_MOCK P_NGX P_GW P_GWM < <(python3 -c '
import socket
s=[socket.socket() for _ in range(4)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')

python3 "$BENCH_DIR/lib/payload.py" "$T" >/dev/null
cp "$REPO/conf/embedded-top-models.json" "$T/models.json"
PAYLOAD=$T/chat-$BODY.json
ACCEPT=()
if [[ $STREAM == 1 ]]; then PAYLOAD=$T/stream-2k.json ACCEPT=(-H 'Accept: text/event-stream'); fi

mkdir -p "$T/m" "$T/p"
cat >"$T/m/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $T/m/nginx.pid; error_log $T/m/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 10000000; client_max_body_size 16m; client_body_temp_path $T/m/body;
  server {
    listen 127.0.0.1:$P_MOCK;
    location = /api/v1/chat/completions {
      if (\$http_accept ~* "event-stream") { rewrite ^ /_sse last; }
      default_type application/json;
      return 200 '{"id":"gen-1","object":"chat.completion","created":1767225600,"model":"mock/model:free","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Hello! This is a fixed answer from the benchmark mock, about as long as a short real reply."}}],"usage":{"prompt_tokens":512,"completion_tokens":38,"total_tokens":550}}';
    }
    location = /_sse {
      internal; default_type text/event-stream;
      return 200 ': OPENROUTER PROCESSING\n\ndata: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\ndata: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\ndata: {"choices":[{"index":0,"delta":{"content":" world"}}]}\n\ndata: [DONE]\n\n';
    }
    location = /api/v1/models { default_type application/json; alias $T/models.json; }
  }
}
EOF
cat >"$T/p/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $T/p/nginx.pid; error_log $T/p/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 10000000; client_max_body_size 8m; client_body_buffer_size 256k;
  client_body_temp_path $T/p/body; proxy_temp_path $T/p/proxy;
  upstream mock { server 127.0.0.1:$P_MOCK; keepalive 128; }
  server {
    listen 127.0.0.1:$P_NGX;
    location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
cat >"$T/gw.yaml" <<EOF
listen: "127.0.0.1:$P_GW"
metrics_listen: "127.0.0.1:$P_GWM"
server: {threads: ${GW_THREADS:-2}, upstream_keepalive_pool_size: ${POOL:-128}, pid_file: "$T/gw.pid", upgrade_sock: "$T/gw.sock", grace_period_seconds: 1, graceful_shutdown_timeout_seconds: 1}
upstream: {base_url: "http://127.0.0.1:$P_MOCK/api/v1", api_keys: ["sk-or-v1-bench-0000000000000000"]}
models: {source_url: "http://127.0.0.1:$P_MOCK/api/v1/models"}
EOF

nginx -p "$T/m" -c "$T/m/nginx.conf" -e "$T/m/error.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$P_MOCK/api/v1/models"
GW_URL="http://127.0.0.1:$P_GW/v1/chat/completions"
NGX_URL="http://127.0.0.1:$P_NGX/api/v1/chat/completions"

# N requests on one kept-alive connection, sequentially (curl reuses the connection).
send_n() { # url n
    local urls=() i
    for ((i = 0; i < $2; i++)); do urls+=("$1"); done
    curl -s -o /dev/null -H 'Content-Type: application/json' "${ACCEPT[@]}" --data-binary @"$PAYLOAD" \
        -w '%{stderr}%{http_code}\n' "${urls[@]}" >/dev/null 2>"$T/codes"
    local bad
    bad=$(grep -vc '^200$' "$T/codes" || true)
    [[ $bad == 0 ]] || { echo "$bad non-200 answers from $1" >&2; exit 1; }
}

tag="$BODY$([[ $STREAM == 1 ]] && echo -stream || true)"
case $MODE in
perf)
    RUST_LOG=${RUST_LOG:-info} "$GATEWAY_BIN" --config "$T/gw.yaml" 2>"$T/gw.log" &
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_http "http://127.0.0.1:$P_GW/health"
    send_n "$GW_URL" 200
    hdr=(-H 'Content-Type: application/json')
    BENCH_BODY=$PAYLOAD BENCH_ACCEPT=$([[ $STREAM == 1 ]] && echo text/event-stream || true) \
        wrk -t1 -c64 -d"${DURATION}s" -s "$BENCH_DIR/lib/post.lua" "$GW_URL" >"$T/wrk.out" 2>&1 &
    WRK_PID=$!
    PIDS+=("$WRK_PID")
    sleep 1
    perf record -q -F 1999 -e cpu-clock --call-graph dwarf,32768 -p "$GW_PID" -o "$T/perf.data" -- sleep $((DURATION - 2)) 2>/dev/null
    wait "$WRK_PID" || true
    grep '^WRK' "$T/wrk.out" >&2
    [[ -n ${PERF_KEEP:-} ]] && cp "$T/perf.data" "$PERF_KEEP"
    perf report -i "$T/perf.data" --no-children --stdio --sort symbol --percent-limit 0.4 2>/dev/null |
        grep -E '^ +[0-9]' | sed 's/ \+- \+- *$//' | head -60 >"$OUT/perf-self-$tag.txt" || true
    perf report -i "$T/perf.data" --children --stdio --sort symbol --percent-limit 1.5 -g none 2>/dev/null |
        grep -E '^ +[0-9]' | sed 's/ \+- \+- *$//' | head -120 >"$OUT/perf-inclusive-$tag.txt" || true
    echo "wrote $OUT/perf-self-$tag.txt and $OUT/perf-inclusive-$tag.txt" >&2
    ;;
callgrind)
    for who in ${WHO:-gateway nginx}; do
        if [[ $who == gateway ]]; then
            RUST_LOG=${RUST_LOG:-info} valgrind --tool=callgrind --callgrind-out-file="$T/cg.$who" \
                "$GATEWAY_BIN" --config "$T/gw.yaml" 2>"$T/gw.log" &
            url=$GW_URL
            health="http://127.0.0.1:$P_GW/health"
        elif [[ $who == pingora ]]; then
            # bench/pingora-floor (build it with the gateway's CARGO_TARGET_DIR).
            valgrind --tool=callgrind --callgrind-out-file="$T/cg.$who" \
                "${FLOOR_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/pingora-floor}" \
                "127.0.0.1:$P_NGX" "127.0.0.1:$P_MOCK" 1 2>"$T/floor-vg.log" &
            url=$NGX_URL
            health="http://127.0.0.1:$P_NGX/api/v1/models"
        else
            valgrind --tool=callgrind --callgrind-out-file="$T/cg.$who" \
                nginx -p "$T/p" -c "$T/p/nginx.conf" -e "$T/p/error.log" 2>"$T/ngx-vg.log" &
            url=$NGX_URL
            health="http://127.0.0.1:$P_NGX/api/v1/models"
        fi
        pid=$!
        PIDS+=("$pid")
        wait_http "$health"
        send_n "$url" 300
        callgrind_control -z "$pid" >/dev/null
        send_n "$url" "$N"
        callgrind_control -d "$pid" >/dev/null
        sleep 1
        kill -INT "$pid"
        wait "$pid" 2>/dev/null || true
        dump=$(ls -t "$T"/cg."$who"* | grep -v "^$T/cg.$who$" | head -1 || true)
        [[ -n $dump ]] || dump=$T/cg.$who
        total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
        [[ -n ${CG_KEEP:-} ]] && mkdir -p "$CG_KEEP" && cp "$dump" "$CG_KEEP/callgrind.$who.$tag"
        echo "$who: $total instructions for $N requests = $((total / N)) per request" | tee -a "$OUT/callgrind-summary-$tag.txt" >&2
        callgrind_annotate --inclusive=yes --threshold=99 "$dump" 2>/dev/null | head -120 >"$OUT/callgrind-$who-inclusive-$tag.txt" || true
        callgrind_annotate --threshold=95 "$dump" 2>/dev/null | head -80 >"$OUT/callgrind-$who-self-$tag.txt" || true
    done
    ;;
syscalls)
    for who in ${WHO:-gateway nginx}; do
        if [[ $who == gateway ]]; then
            RUST_LOG=${RUST_LOG:-info} strace -f -c -o "$T/strace.$who" "$GATEWAY_BIN" --config "$T/gw.yaml" 2>"$T/gw.log" &
            url=$GW_URL health="http://127.0.0.1:$P_GW/health"
        else
            strace -f -c -o "$T/strace.$who" nginx -p "$T/p" -c "$T/p/nginx.conf" -e "$T/p/error.log" &
            url=$NGX_URL health="http://127.0.0.1:$P_NGX/api/v1/models"
        fi
        pid=$!
        PIDS+=("$pid")
        wait_http "$health"
        send_n "$url" "$N"
        # Background jobs ignore SIGINT, and strace keeps it ignored: signal the tracee.
        kill -INT "$(pgrep -P "$pid" | head -1)"
        wait "$pid" 2>/dev/null || true
        { echo "$who: $N requests (plus start-up)"; cat "$T/strace.$who"; } | tee "$OUT/strace-$who-$tag.txt" >&2
    done
    ;;
fallback)
    MOCK_BIN=$BENCH_DIR/mock/target/release/bench-mock
    (cd "$BENCH_DIR/mock" && cargo build --release -q)
    P_RM=$P_GWM
    P_GWM2=$((P_GWM + 1))
    "$MOCK_BIN" --listen "127.0.0.1:$P_RM" --models "$T/models.json" 2>"$T/rmock.log" &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$P_RM/stats"
    sed -i "s|127.0.0.1:$P_MOCK|127.0.0.1:$P_RM|g; s|metrics_listen: \"127.0.0.1:$P_GWM\"|metrics_listen: \"127.0.0.1:$P_GWM2\"|" "$T/gw.yaml"
    read -r RANK1 RANK2 < <(python3 -c 'import json,sys; m=sorted(json.load(open(sys.argv[1]))["models"],key=lambda m:m["rank"]); print(m[0]["id"], m[1]["id"])' "$T/models.json")
    RUST_LOG=${RUST_LOG:-info} valgrind --tool=callgrind --callgrind-out-file="$T/cg.fb" \
        "$GATEWAY_BIN" --config "$T/gw.yaml" 2>"$T/gw.log" &
    pid=$!
    PIDS+=("$pid")
    wait_http "http://127.0.0.1:$P_GW/health"
    count() { curl -s "http://127.0.0.1:$P_RM/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["by_model"].get(sys.argv[1], 0))' "$1"; }
    send_n "$GW_URL" 300
    callgrind_control -z "$pid" >/dev/null
    send_n "$GW_URL" "$N"
    callgrind_control -d "$pid" >/dev/null
    curl -s -o /dev/null "http://127.0.0.1:$P_RM/control/fail-once?model=$RANK1"
    hdr=$(curl -s -D - -o /dev/null -H 'Content-Type: application/json' --data-binary @"$PAYLOAD" "$GW_URL" | tr -d '\r')
    grep -qi "^x-free-llm-proxy-attempts: 2" <<<"$hdr" || { echo "no fallback happened: $hdr" >&2; exit 1; }
    before=$(count "$RANK1")
    send_n "$GW_URL" 300
    callgrind_control -z "$pid" >/dev/null
    send_n "$GW_URL" "$N"
    callgrind_control -d "$pid" >/dev/null
    after=$(count "$RANK1")
    kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
    total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}'; }
    a=$(total "$T/cg.fb.1") b=$(total "$T/cg.fb.2")
    {
        echo "rank-1 ($RANK1) answering: $((a / N)) instructions per request"
        echo "rank-1 cooling (served by $RANK2): $((b / N)) instructions per request"
        echo "difference: $(((b - a) / N)) instructions per request; rank-1 upstream calls while cooling: $((after - before))"
    } | tee "$OUT/fallback-callgrind-$tag.txt" >&2
    ;;
cpu)
    RUST_LOG=${RUST_LOG:-info} "$GATEWAY_BIN" --config "$T/gw.yaml" 2>"$T/gw.log" &
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_http "http://127.0.0.1:$P_GW/health"
    send_n "$GW_URL" 200
    ticks() { local s f; s=$(cat "/proc/$1/stat"); read -ra f <<<"${s##*) }"; echo "${f[11]} ${f[12]}"; }
    read -r u0 s0 < <(ticks "$GW_PID")
    # Context switches of the gateway's threads (software counter: works without PMU access).
    perf stat -x, -e context-switches -p "$GW_PID" -o "$T/pstat" &
    PSTAT=$!
    BENCH_BODY=$PAYLOAD BENCH_ACCEPT=$([[ $STREAM == 1 ]] && echo text/event-stream || true) \
        wrk -t1 -c"${CONC:-16}" -d"${DURATION}s" -s "$BENCH_DIR/lib/post.lua" "$GW_URL" >"$T/wrk.out" 2>&1
    read -r u1 s1 < <(ticks "$GW_PID")
    kill -INT "$PSTAT"
    wait "$PSTAT" 2>/dev/null || true
    cs=$(awk -F, '/context-switches/ {print $1}' "$T/pstat")
    line=$(grep '^WRK' "$T/wrk.out")
    python3 - "$line" $((u1 - u0)) $((s1 - s0)) "$(getconf CLK_TCK)" "$GATEWAY_BIN" "$tag" "${cs:-0}" <<'PY'
import sys
line, du, ds, tck, binary, tag, cs = sys.argv[1:]
kv = dict(x.split("=") for x in line.split()[1:])
n = int(kv["requests"])
u, s = int(du) / int(tck), int(ds) / int(tck)
print(f"{binary} [{tag}]: {float(kv['rps']):.0f} rps, p50 {float(kv['p50_us']):.0f} us; gateway CPU per request "
      f"{(u + s) * 1e6 / n:.1f} us (user {u * 1e6 / n:.1f}, sys {s * 1e6 / n:.1f}), "
      f"context switches per request {int(cs) / n:.2f}, errors {sum(int(v) for k, v in kv.items() if k.startswith('err_'))}")
PY
    ;;
*)
    echo "usage: $0 perf|callgrind|syscalls|fallback|cpu" >&2
    exit 2
    ;;
esac
