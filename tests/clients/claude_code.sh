#!/usr/bin/env bash
# Manual check: Claude Code (`claude -p`) through the gateway's Anthropic front, against
# tests/clients/mock_upstream.py, for a prompt that needs one tool call (Read).
#
# Not part of `cargo test`. Needs the `claude` CLI (npm install -g @anthropic-ai/claude-code,
# or CLAUDE=/path/to/claude) and python3. Everything listens on 127.0.0.1; Claude Code runs
# with a throw-away HOME and no telemetry, update checks or other non-essential traffic.
#
#   bash tests/clients/claude_code.sh
#
# Exits 0 when Claude Code read the file through the tool and printed what the mock made of
# the tool result.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
claude="${CLAUDE:-$(command -v claude || true)}"
if [[ -z "$claude" ]]; then
  echo "claude CLI not found: npm install -g @anthropic-ai/claude-code, or set CLAUDE=" >&2
  exit 2
fi
gateway_bin="${GATEWAY_BIN:-$repo/target/debug/free-llm-proxy}"
[[ -x "$gateway_bin" ]] || (cd "$repo" && cargo build --quiet)

work="$(mktemp -d -t claude-code-check-XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mock_port="$(free_port)"; port="$(free_port)"; metrics_port="$(free_port)"
key="claude-code-check-key"
secret="pelican-$RANDOM-$RANDOM"
mkdir -p "$work/project" "$work/home" "$work/state"
echo "The secret word is $secret." > "$work/project/secret.txt"

MOCK_READ_PATH="$work/project/secret.txt" MOCK_LOG="$work/upstream.jsonl" \
  python3 "$repo/tests/clients/mock_upstream.py" --port "$mock_port" 2>"$work/mock.log" &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$mock_port/top-models" >/dev/null 2>&1 && break
  sleep 0.05
done

cat > "$work/config.yaml" <<EOF
listen: "127.0.0.1:$port"
metrics_listen: "127.0.0.1:$metrics_port"
state_dir: "$work/state"
upstream:
  base_url: "http://127.0.0.1:$mock_port/api/v1"
  api_keys: ["sk-or-mock-key-0001"]
models:
  source_url: "http://127.0.0.1:$mock_port/top-models"
auth:
  client_keys:
    - { name: "claude-code", key: "$key" }
EOF
"$gateway_bin" --config "$work/config.yaml" >"$work/gateway.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 200); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.05
done
curl -fsS "http://127.0.0.1:$port/health" >/dev/null || { echo "gateway did not start"; cat "$work/gateway.log"; exit 1; }

echo "claude: $("$claude" --version 2>/dev/null || echo '?')"
set +e
output="$(
  cd "$work/project" &&
  env -i PATH="$PATH" HOME="$work/home" TERM=dumb \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 \
    DISABLE_ERROR_REPORTING=1 \
    ANTHROPIC_BASE_URL="http://127.0.0.1:$port/anthropic" ANTHROPIC_AUTH_TOKEN="$key" \
    timeout 180 "$claude" -p "What is the secret word in secret.txt? Read the file." \
      --allowedTools Read --output-format text 2>"$work/claude.err"
)"
status=$?
set -e

echo "--- claude exit status: $status"
echo "--- claude output:"
echo "$output"
[[ -s "$work/claude.err" ]] && { echo "--- claude stderr:"; cat "$work/claude.err"; }
echo "--- upstream requests (mock):"
cat "$work/upstream.jsonl" 2>/dev/null || echo "(none)"
echo "--- gateway request_done lines (route status model):"
python3 - "$work/gateway.log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "request_done":
        print(e["route"], e["status"], e.get("chosen_model"), "stream" if e.get("stream") else "")
PY

if [[ $status -eq 0 && "$output" == *"$secret"* ]] && grep -q '"tool"' "$work/upstream.jsonl"; then
  echo "PASS: Claude Code called Read through the gateway and answered with the tool result"
  exit 0
fi
echo "FAIL"
exit 1
