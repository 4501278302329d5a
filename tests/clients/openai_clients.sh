#!/usr/bin/env bash
# Manual client checks: the `openai` Python SDK (when installed) and Qwen Code (`qwen -p`)
# against the gateway and a mock upstream, all on loopback. Installs @qwen-code/qwen-code into a temp dir when `qwen` is missing.
# Usage: tests/clients/qwen_code.sh   (builds the debug binary first)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

cargo build -q
qwen=$(command -v qwen || true)
if [ -z "$qwen" ]; then
  (cd "$work" && npm install --silent --no-audit --no-fund @qwen-code/qwen-code >/dev/null)
  qwen="$work/node_modules/.bin/qwen"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mock_port=$(free_port); gw_port=$(free_port); metrics_port=$(free_port)
MOCK_LOG="$work/mock.log" MOCK_REPLY="PONG from the free model" MOCK_TOOL='get_weather:{"city":"Paris"}' python3 tests/clients/openai_mock.py "$mock_port" & pids+=($!)
cat > "$work/config.yaml" <<YAML
listen: "127.0.0.1:$gw_port"
metrics_listen: "127.0.0.1:$metrics_port"
server: {pid_file: "$work/pid", upgrade_sock: "$work/upgrade.sock"}
upstream: {base_url: "http://127.0.0.1:$mock_port/api/v1", api_keys: ["sk-or-mock-key-0001"]}
models: {source_url: "http://127.0.0.1:$mock_port/top-models"}
auth: {client_keys: [{name: qwen, key: "team-key-123456"}]}
YAML
./target/debug/free-llm-proxy --config "$work/config.yaml" 2> "$work/gateway.log" & pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$gw_port/health" >/dev/null && break; sleep 0.1; done

if python3 -c 'import openai' 2>/dev/null; then
  python3 tests/clients/openai_sdk.py "http://127.0.0.1:$gw_port/v1" team-key-123456 "PONG from the free model"
fi

export HOME="$work/home"; mkdir -p "$HOME"
out=$(OPENAI_BASE_URL="http://127.0.0.1:$gw_port/v1" OPENAI_API_KEY=team-key-123456 OPENAI_MODEL=auto \
  timeout 120 "$qwen" -p "Reply with one word." 2>&1 || true)
echo "qwen said: $out"
echo "upstream saw: $(cat "$work/mock.log" 2>/dev/null | head -3)"
if grep -q "PONG from the free model" <<<"$out"; then echo "RESULT: ok"; else echo "RESULT: FAILED"; tail -5 "$work/gateway.log"; exit 1; fi
