#!/usr/bin/env bash
# bench/run.sh: the load benchmark of issue 6, in one bounded run (loopback only).
#
# Builds the gateway (cargo build --release), bench/mock and bench/pingora-floor, then starts
#   - mock:   nginx (1 process) serving a fixed chat completion / SSE body / model list;
#   - nginx:  an nginx reverse proxy (proxy_pass + upstream keepalive) in front of it;
#   - gw:     the gateway (upstream.base_url = mock, no client auth);
# and measures, side by side, with wrk: direct-to-mock, nginx proxy and gateway at
# c = 1 16 64 256 with a ~2 KiB chat request, and with a 200 KiB one. Then: streaming
# TTFB (curl, one kept-alive connection), the gateway's RSS idle and with 1000 open
# streams (bench/mock holding streams open, a Python asyncio client), and the cost of a
# fallback past a cooling rank-1 model. Prints one table and the targets, and writes
# them to bench/results/latest.txt. Everything it starts is stopped by PID on exit.
#
# With bench/pingora-floor built (SKIP=pingora to leave it out), a fourth target,
# "pingora", is the plainest Pingora reverse proxy: what the framework alone costs.
#
# Knobs (environment): DURATION (s per wrk run, 3), ROUNDS (3: the whole matrix is run
# this many times, interleaved, and the report takes the median), CONCS ("1 16 64 256"),
# BIG_CONCS ("16 64"), GW_THREADS (2), NGINX_WORKERS (= GW_THREADS), WRK_THREADS (1),
# PIN (0; 1 = wrk on CPU 1, everything else on CPU 0), STREAMS (1000), TTFB_N (300),
# FALLBACK_SECS (3), GATEWAY_SRC (repo root) or GATEWAY_BIN (skip the gateway build),
# GW_LOG (file for the gateway's stderr; default a temp file), QUIET_LOAD (wait up to
# 5 min for the 1-min load average to drop below this), KEEP_TMP=1,
# SKIP="mem ttfb fallback big pingora", CARGO_TARGET_DIR (where the gateway's build lives;
# pingora-floor is built there too, to reuse the compiled Pingora). See RESULTS.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
GATEWAY_SRC=${GATEWAY_SRC:-$REPO}
DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-3}
CONCS=${CONCS:-"1 16 64 256"}
BIG_CONCS=${BIG_CONCS:-"16 64"}
GW_THREADS=${GW_THREADS:-2}
NGINX_WORKERS=${NGINX_WORKERS:-$GW_THREADS}
WRK_THREADS=${WRK_THREADS:-1}
PIN=${PIN:-0}
STREAMS=${STREAMS:-1000}
TTFB_N=${TTFB_N:-300}
FALLBACK_SECS=${FALLBACK_SECS:-3}
SKIP=${SKIP:-}
CLK_TCK=$(getconf CLK_TCK)
START_TS=$(date +%s)

say() { printf '[bench %3ds] %s\n' $(($(date +%s) - START_TS)) "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }
skipped() { [[ " $SKIP " == *" $1 "* ]]; }

# ---------------------------------------------------------------- prerequisites
need_apt=()
command -v nginx >/dev/null || need_apt+=(nginx-light)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v curl >/dev/null || need_apt+=(curl)
command -v python3 >/dev/null || need_apt+=(python3)
if ((${#need_apt[@]})); then
    [[ $(id -u) == 0 ]] || die "missing ${need_apt[*]}: apt-get install -y ${need_apt[*]}"
    say "installing ${need_apt[*]} (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
NGINX=$(command -v nginx)

# ---------------------------------------------------------------- quiet machine
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
if [[ -n ${QUIET_LOAD:-} ]]; then
    for _ in $(seq 60); do
        awk -v q="$QUIET_LOAD" '{exit !($1 < q)}' /proc/loadavg && break
        say "waiting for a quiet machine (load $(loadavg), want < $QUIET_LOAD)"
        sleep 5
    done
fi
LOAD_BEFORE=$(loadavg)

# ---------------------------------------------------------------- build
if [[ -z ${GATEWAY_BIN:-} ]]; then
    say "cargo build --release in $GATEWAY_SRC"
    (cd "$GATEWAY_SRC" && cargo build --release 2>&1 | tail -3 >&2)
    GATEWAY_BIN=${CARGO_TARGET_DIR:-$GATEWAY_SRC/target}/release/free-llm-proxy
fi
[[ -x $GATEWAY_BIN ]] || die "no gateway binary at $GATEWAY_BIN"
say "building bench/mock"
(cd "$BENCH_DIR/mock" && cargo build --release -q 2>&1 | tail -3 >&2)
MOCK_BIN=$BENCH_DIR/mock/target/release/bench-mock
TARGETS="direct nginx gateway"
if ! skipped pingora; then
    # Same dependency versions and profile as the gateway: sharing its target directory
    # lets Cargo reuse the compiled Pingora.
    FLOOR_TARGET=${CARGO_TARGET_DIR:-$GATEWAY_SRC/target}
    say "building bench/pingora-floor (target dir $FLOOR_TARGET)"
    (cd "$BENCH_DIR/pingora-floor" && CARGO_TARGET_DIR=$FLOOR_TARGET cargo build --release -q 2>&1 | tail -3 >&2)
    FLOOR_BIN=$FLOOR_TARGET/release/pingora-floor
    TARGETS="direct nginx pingora gateway"
fi

# ---------------------------------------------------------------- processes
T=$(mktemp -d /tmp/fllp-bench.XXXXXX)
PIDS=()
cleanup() {
    local rc=$? pid i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        # SIGINT: Pingora's fast shutdown (SIGTERM would wait for the grace period); the
        # mock and the stream client ignore SIGINT as background jobs: SIGTERM for them.
        if [[ $pid == "${GW_PID:-}" || $pid == "${GW2_PID:-}" || $pid == "${FLOOR_PID:-}" ]]; then
            kill -INT "$pid" 2>/dev/null || true
        else
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${KEEP_TMP:-0} == 1 || $rc != 0 ]]; then say "temp files kept in $T"; else rm -rf "$T"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PIN_LOAD=() PIN_SRV=()
if [[ $PIN == 1 ]]; then PIN_LOAD=(taskset -c 1) PIN_SRV=(taskset -c 0); fi

read -r P_MOCK P_NGX P_GW P_GWM P_RMOCK P_GW2 P_GW2M P_FLOOR < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)

wait_http() { # url [seconds]
    for _ in $(seq $((${2:-10} * 10))); do
        curl -s -o /dev/null -m 1 "$1" && return 0
        sleep 0.1
    done
    die "nothing answers at $1"
}

python3 "$BENCH_DIR/lib/payload.py" "$T" >/dev/null
cp "$GATEWAY_SRC/conf/embedded-top-models.json" "$T/models.json"
RANK1=$(python3 -c 'import json,sys; m=sorted(json.load(open(sys.argv[1]))["models"],key=lambda m:m["rank"]); print(m[0]["id"], m[1]["id"])' "$T/models.json")
read -r RANK1 RANK2 <<<"$RANK1"

# -- the fast mock: nginx, one process, static answers (body chosen by the Accept header
#    the gateway sets: text/event-stream for streams).
SSE=$(printf '%s' ': OPENROUTER PROCESSING\n\n'
    printf '%s' 'data: {"id":"gen-bench-0001","object":"chat.completion.chunk","created":1767225600,"model":"mock/model:free","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
    for w in Hello '!' ' This' ' is' ' a' ' fixed' ' streamed' ' answer' .; do
        printf 'data: {"id":"gen-bench-0001","object":"chat.completion.chunk","created":1767225600,"model":"mock/model:free","choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}\\n\\n' "$w"
    done
    printf '%s' 'data: {"id":"gen-bench-0001","object":"chat.completion.chunk","created":1767225600,"model":"mock/model:free","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":512,"completion_tokens":9,"total_tokens":521}}\n\n'
    printf '%s' 'data: [DONE]\n\n')
COMPLETION='{"id":"gen-bench-0001","provider":"Mock","model":"mock/model:free","object":"chat.completion","created":1767225600,"choices":[{"logprobs":null,"finish_reason":"stop","native_finish_reason":"stop","index":0,"message":{"role":"assistant","content":"Hello! This is a fixed answer from the benchmark mock. It is about as long as a short real reply, so the response size is realistic for a chat completion.","refusal":null,"reasoning":null}}],"usage":{"prompt_tokens":512,"completion_tokens":38,"total_tokens":550}}'

mkdir -p "$T/ngx-mock" "$T/ngx-proxy"
cat >"$T/ngx-mock/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $T/ngx-mock/nginx.pid;
error_log $T/ngx-mock/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_max_body_size 16m;
    client_body_temp_path $T/ngx-mock/body;
    server {
        listen 127.0.0.1:$P_MOCK backlog=4096;
        location = /api/v1/chat/completions {
            if (\$http_accept ~* "event-stream") { rewrite ^ /_sse last; }
            default_type application/json;
            return 200 '$COMPLETION';
        }
        location = /_sse {
            internal;
            default_type text/event-stream;
            return 200 '$SSE';
        }
        location = /api/v1/models {
            default_type application/json;
            alias $T/models.json;
        }
    }
}
EOF
cat >"$T/ngx-proxy/nginx.conf" <<EOF
daemon off;
worker_processes $NGINX_WORKERS;
pid $T/ngx-proxy/nginx.pid;
error_log $T/ngx-proxy/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_max_body_size 8m;
    # Keep request bodies in memory, as the gateway does (default 16k spills to disk).
    client_body_buffer_size 256k;
    client_body_temp_path $T/ngx-proxy/body;
    proxy_temp_path $T/ngx-proxy/proxy;
    upstream mock {
        server 127.0.0.1:$P_MOCK;
        keepalive 128;
        keepalive_requests 10000000;
    }
    server {
        listen 127.0.0.1:$P_NGX backlog=4096;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

gw_config() { # file listen metrics upstream_port
    cat >"$1" <<EOF
listen: "127.0.0.1:$2"
metrics_listen: "127.0.0.1:$3"
server:
  threads: $GW_THREADS
  pid_file: "$T/gw-$2.pid"
  upgrade_sock: "$T/gw-$2.sock"
  grace_period_seconds: 1
  graceful_shutdown_timeout_seconds: 1
upstream:
  base_url: "http://127.0.0.1:$4/api/v1"
  api_keys: ["sk-or-v1-bench-0000000000000000"]
models:
  source_url: "http://127.0.0.1:$4/api/v1/models"
auth:
  admin_keys: ["bench-admin-key"]
EOF
}
gw_config "$T/gw.yaml" "$P_GW" "$P_GWM" "$P_MOCK"
gw_config "$T/gw2.yaml" "$P_GW2" "$P_GW2M" "$P_RMOCK"
"$GATEWAY_BIN" --check --config "$T/gw.yaml" >/dev/null || die "gateway config rejected"

say "starting nginx mock :$P_MOCK, nginx proxy :$P_NGX (workers $NGINX_WORKERS), gateway :$P_GW (threads $GW_THREADS)"
"${PIN_SRV[@]}" "$NGINX" -p "$T/ngx-mock" -c "$T/ngx-mock/nginx.conf" -e "$T/ngx-mock/error.log" &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
"${PIN_SRV[@]}" "$NGINX" -p "$T/ngx-proxy" -c "$T/ngx-proxy/nginx.conf" -e "$T/ngx-proxy/error.log" &
NGX_PID=$!
PIDS+=("$NGX_PID")
wait_http "http://127.0.0.1:$P_MOCK/api/v1/models"
GW_LOG=${GW_LOG:-$T/gateway.log}
RUST_LOG=${RUST_LOG:-info} "${PIN_SRV[@]}" "$GATEWAY_BIN" --config "$T/gw.yaml" 2>>"$GW_LOG" &
GW_PID=$!
PIDS+=("$GW_PID")
wait_http "http://127.0.0.1:$P_GW/health"
wait_http "http://127.0.0.1:$P_NGX/api/v1/models"
FLOOR_PID=0
if [[ -n ${FLOOR_BIN:-} ]]; then
    "${PIN_SRV[@]}" "$FLOOR_BIN" "127.0.0.1:$P_FLOOR" "127.0.0.1:$P_MOCK" "$GW_THREADS" 2>"$T/floor.log" &
    FLOOR_PID=$!
    PIDS+=("$FLOOR_PID")
    wait_http "http://127.0.0.1:$P_FLOOR/api/v1/models"
fi

URL_DIRECT="http://127.0.0.1:$P_MOCK/api/v1/chat/completions"
URL_NGINX="http://127.0.0.1:$P_NGX/api/v1/chat/completions"
URL_GW="http://127.0.0.1:$P_GW/v1/chat/completions"
declare -A URL=([direct]=$URL_DIRECT [nginx]=$URL_NGINX [gateway]=$URL_GW
    [pingora]="http://127.0.0.1:$P_FLOOR/api/v1/chat/completions")
declare -A PROC=([direct]=0 [nginx]=$NGX_PID [gateway]=$GW_PID [pingora]=$FLOOR_PID)

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
sleep 1
GW_RSS_IDLE=$(rss_kb "$GW_PID")

# Sanity: every target answers the chat request with 200; the gateway names its model.
for target in $TARGETS; do
    code=$(curl -s -o "$T/sanity.out" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary @"$T/chat-2k.json" "${URL[$target]}")
    [[ $code == 200 ]] || die "$target answered $code: $(head -c 300 "$T/sanity.out")"
done
hdr=$(curl -s -D - -o /dev/null -H 'Content-Type: application/json' --data-binary @"$T/chat-2k.json" "$URL_GW" | tr -d '\r')
grep -qi "^x-free-llm-proxy-model: $RANK1" <<<"$hdr" || die "gateway did not route to $RANK1: $hdr"
grep -qi '^x-free-llm-proxy-attempts: 1' <<<"$hdr" || die "gateway took more than one attempt: $hdr"

# ---------------------------------------------------------------- CPU accounting
proc_ticks() { # utime+stime of a process and its child processes (nginx workers)
    local total=0 p s f
    for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
        s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        read -ra f <<<"${s##*) }"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}
sys_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

RESULTS=$T/results.tsv
printf 'test\ttarget\tconc\trps\tp50_us\tp90_us\tp99_us\tmax_us\terrors\tcpu_load\tcpu_mock\tcpu_proxy\tcpu_all\twall\n' >"$RESULTS"

run_wrk() { # test target conc body_file [record]
    local test=$1 target=$2 conc=$3 body=$4 record=${5:-1}
    local threads=$WRK_THREADS out=$T/wrk.out proxy=${PROC[$target]}
    ((conc < threads)) && threads=$conc
    local m0 p0=0 s0 t0 t1
    m0=$(proc_ticks "$MOCK_PID")
    [[ $proxy != 0 ]] && p0=$(proc_ticks "$proxy")
    s0=$(sys_busy)
    t0=$(date +%s.%N)
    local dur=$DURATION
    [[ $record == 0 ]] && dur=1
    {
        TIMEFORMAT='CPU %U %S'
        time BENCH_BODY=$body "${PIN_LOAD[@]}" wrk -t"$threads" -c"$conc" -d"${dur}s" --timeout 5s \
            -s "$BENCH_DIR/lib/post.lua" "${URL[$target]}" >"$out" 2>&1
    } 2>>"$out"
    t1=$(date +%s.%N)
    [[ $record == 0 ]] && return 0
    local m1 p1=0 s1
    m1=$(proc_ticks "$MOCK_PID")
    [[ $proxy != 0 ]] && p1=$(proc_ticks "$proxy")
    s1=$(sys_busy)
    local line cpu
    line=$(grep '^WRK ' "$out") || die "wrk printed no result for $test $target c=$conc: $(cat "$out")"
    cpu=$(grep '^CPU ' "$out" | tail -1)
    python3 - "$line" "$cpu" "$test" "$target" "$conc" "$((m1 - m0))" "$((p1 - p0))" "$((s1 - s0))" "$t0" "$t1" "$CLK_TCK" >>"$RESULTS" <<'EOF'
import sys
line, cpu, test, target, conc, dm, dp, ds, t0, t1, tck = sys.argv[1:]
kv = dict(x.split("=") for x in line.split()[1:])
u, s = (float(x) for x in cpu.split()[1:3])
tck = float(tck)
errors = sum(int(kv[k]) for k in kv if k.startswith("err_"))
print("\t".join([test, target, conc, kv["rps"], kv["p50_us"], kv["p90_us"], kv["p99_us"], kv["max_us"], str(errors),
                 f"{u + s:.2f}", f"{int(dm) / tck:.2f}", f"{int(dp) / tck:.2f}", f"{int(ds) / tck:.2f}", f"{float(t1) - float(t0):.2f}"]))
EOF
    say "$(tail -1 "$RESULTS" | awk -F'\t' '{printf "%-6s %-8s c=%-4s %9.0f rps  p50 %7.0f us  p99 %7.0f us  err %s", $1, $2, $3, $4, $5, $7, $9}')"
}

# ---------------------------------------------------------------- load matrix
say "warm-up"
for target in $TARGETS; do run_wrk warm "$target" 16 "$T/chat-2k.json" 0; done
for round in $(seq "$ROUNDS"); do
    say "round $round of $ROUNDS"
    for conc in $CONCS; do
        for target in $TARGETS; do run_wrk 2k "$target" "$conc" "$T/chat-2k.json"; done
    done
    if ! skipped big; then
        for conc in $BIG_CONCS; do
            for target in $TARGETS; do run_wrk 200k "$target" "$conc" "$T/chat-200k.json"; done
        done
    fi
done
GW_RSS_AFTER=$(rss_kb "$GW_PID")

# ---------------------------------------------------------------- streaming TTFB
if ! skipped ttfb; then
    say "streaming TTFB: $TTFB_N requests per target on one kept-alive connection"
    for target in $TARGETS; do
        urls=()
        for _ in $(seq "$TTFB_N"); do urls+=("${URL[$target]}"); done
        curl -s -H 'Content-Type: application/json' -H 'Accept: text/event-stream' \
            --data-binary @"$T/stream-2k.json" -w '%{stderr}%{http_code} %{time_starttransfer}\n' \
            "${urls[@]}" >"$T/ttfb-$target.body" 2>"$T/ttfb-$target.txt"
        grep -q '\[DONE\]' "$T/ttfb-$target.body" || die "$target streamed no [DONE]"
    done
fi

# ---------------------------------------------------------------- gateway 2: streams, fallback
MEM_LINE="" FALLBACK_LINE=""
if ! skipped mem || ! skipped fallback; then
    say "starting bench/mock :$P_RMOCK (streams held 30 s) and gateway 2 :$P_GW2"
    "${PIN_SRV[@]}" "$MOCK_BIN" --listen "127.0.0.1:$P_RMOCK" --models "$T/models.json" --hold-secs 30 --tick-ms 1000 2>"$T/rmock.log" &
    RMOCK_PID=$!
    PIDS+=("$RMOCK_PID")
    wait_http "http://127.0.0.1:$P_RMOCK/stats"
    RUST_LOG=${RUST_LOG:-info} "${PIN_SRV[@]}" "$GATEWAY_BIN" --config "$T/gw2.yaml" 2>>"$T/gateway2.log" &
    GW2_PID=$!
    PIDS+=("$GW2_PID")
    wait_http "http://127.0.0.1:$P_GW2/health"
    sleep 1
    GW2_RSS_IDLE=$(rss_kb "$GW2_PID")
fi

if ! skipped mem; then
    say "memory: $STREAMS concurrent open streams through gateway 2"
    python3 "$BENCH_DIR/lib/streams.py" 127.0.0.1 "$P_GW2" /v1/chat/completions "$T/stream-2k.json" "$STREAMS" 4 >"$T/streams.out" 2>"$T/streams.err" &
    SPID=$!
    PIDS+=("$SPID")
    for _ in $(seq 400); do grep -q '^READY' "$T/streams.out" && break; sleep 0.1; done
    sleep 1
    GW2_RSS_STREAMS=$(rss_kb "$GW2_PID")
    OPEN_UP=$(curl -s "http://127.0.0.1:$P_RMOCK/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["open_streams"])')
    sleep 1
    GW2_RSS_STREAMS2=$(rss_kb "$GW2_PID")
    ((GW2_RSS_STREAMS2 > GW2_RSS_STREAMS)) && GW2_RSS_STREAMS=$GW2_RSS_STREAMS2
    wait "$SPID" || true
    sleep 2
    GW2_RSS_AFTER=$(rss_kb "$GW2_PID")
    MEM_LINE="$GW2_RSS_IDLE $GW2_RSS_STREAMS $GW2_RSS_AFTER $OPEN_UP $(grep '^READY' "$T/streams.out" | cut -d' ' -f2) $(grep -o 'failed=[0-9]*' "$T/streams.out" | cut -d= -f2)"
    [[ -s $T/streams.err ]] && say "stream client: $(head -3 "$T/streams.err")"
fi

if ! skipped fallback; then
    say "fallback: rank-1 $RANK1 cooling vs not, c=1, ${FALLBACK_SECS}s x 2 rounds each"
    count() { curl -s "http://127.0.0.1:$P_RMOCK/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["by_model"].get(sys.argv[1], 0))' "$1"; }
    URL[gw2]="http://127.0.0.1:$P_GW2/v1/chat/completions"
    PROC[gw2]=$GW2_PID
    MOCK_PID_SAVED=$MOCK_PID
    MOCK_PID=$RMOCK_PID
    DURATION_SAVED=$DURATION
    DURATION=$FALLBACK_SECS
    run_wrk warm gw2 1 "$T/chat-2k.json" 0
    extra=0
    for round in 1 2; do
        run_wrk fb-normal gw2 1 "$T/chat-2k.json"
        curl -s -o /dev/null "http://127.0.0.1:$P_RMOCK/control/fail-once?model=$RANK1"
        r1=$(count "$RANK1")
        hdr=$(curl -s -D - -o /dev/null -H 'Content-Type: application/json' --data-binary @"$T/chat-2k.json" "${URL[gw2]}" | tr -d '\r')
        grep -qi "^x-free-llm-proxy-model: $RANK2" <<<"$hdr" || die "after a 429 the gateway did not fall back to $RANK2: $hdr"
        grep -qi '^x-free-llm-proxy-attempts: 2' <<<"$hdr" || die "the 429'd request did not take 2 attempts: $hdr"
        r1b=$(count "$RANK1")
        ((r1b == r1 + 1)) || die "rank-1 calls went $r1 -> $r1b for the 429'd request"
        run_wrk fb-cooling gw2 1 "$T/chat-2k.json"
        r1c=$(count "$RANK1")
        extra=$((extra + r1c - r1b))
        # Lift the cooldown for the next round (admin refresh clears every cooldown).
        curl -s -o /dev/null -X POST -H 'Authorization: Bearer bench-admin-key' "http://127.0.0.1:$P_GW2/admin/refresh"
    done
    DURATION=$DURATION_SAVED
    MOCK_PID=$MOCK_PID_SAVED
    FALLBACK_LINE="$extra"
fi
LOAD_AFTER=$(loadavg)

# ---------------------------------------------------------------- report
mkdir -p "$BENCH_DIR/results"
python3 "$BENCH_DIR/lib/report.py" "$T" \
    "gw_threads=$GW_THREADS" "nginx_workers=$NGINX_WORKERS" "wrk_threads=$WRK_THREADS" "pin=$PIN" \
    "duration=$DURATION" "rounds=$ROUNDS" "load_before=$LOAD_BEFORE" "load_after=$LOAD_AFTER" \
    "rss_idle=$GW_RSS_IDLE" "rss_after_load=$GW_RSS_AFTER" "mem=$MEM_LINE" "fallback_extra=$FALLBACK_LINE" \
    "streams=$STREAMS" "gateway_bin=$GATEWAY_BIN" | tee "$BENCH_DIR/results/latest.txt"
cp "$RESULTS" "$BENCH_DIR/results/latest.tsv"
say "done in $(($(date +%s) - START_TS)) s"
