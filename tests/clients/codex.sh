#!/usr/bin/env bash
# Manual check: Codex CLI (`codex exec`, wire_api = "responses") through the gateway's
# Responses front, against tests/clients/openai_mock.py, for a prompt that needs one tool
# call: the mock asks for `exec_command` with `cat marker.txt`, Codex runs it, and the
# mock's second answer quotes the command's output ("Tool said: ...").
#
# Not part of `cargo test`. Installs @openai/codex (0.171.0, with its native binary) into a
# temp dir unless CODEX=/path/to/codex is given. Everything listens on 127.0.0.1; Codex
# runs with a throw-away CODEX_HOME and HOME.
#
#   bash tests/clients/codex.sh
#
# Exits 0 when Codex ran the command and printed the secret it read.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d -t codex-check-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cargo build -q
codex="${CODEX:-$(command -v codex || true)}"
if [ -z "$codex" ]; then
  (cd "$work" && npm install --silent --no-audit --no-fund @openai/codex@0.171.0 >/dev/null)
  codex="$work/node_modules/.bin/codex"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mock_port=$(free_port); gw_port=$(free_port); metrics_port=$(free_port)
MOCK_LOG="$work/mock.log" MOCK_TOOL='exec_command:{"cmd":"cat marker.txt"}' \
  python3 tests/clients/openai_mock.py "$mock_port" & pids+=($!)
cat > "$work/config.yaml" <<YAML
listen: "127.0.0.1:$gw_port"
metrics_listen: "127.0.0.1:$metrics_port"
server: {pid_file: "$work/pid", upgrade_sock: "$work/upgrade.sock"}
upstream: {base_url: "http://127.0.0.1:$mock_port/api/v1", api_keys: ["sk-or-mock-key-0001"]}
models: {source_url: "http://127.0.0.1:$mock_port/top-models"}
auth: {client_keys: [{name: codex, key: "team-key-123456"}]}
YAML
./target/debug/free-llm-proxy --config "$work/config.yaml" 2> "$work/gateway.log" & pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$gw_port/health" >/dev/null && break; sleep 0.1; done

mkdir -p "$work/home" "$work/project"
secret="SECRET-$RANDOM$RANDOM"
echo "The secret is $secret" > "$work/project/marker.txt"
cat > "$work/home/config.toml" <<TOML
model = "auto"
model_provider = "free-llm-proxy"
approval_policy = "never"
sandbox_mode = "read-only"

[model_providers.free-llm-proxy]
name = "free-llm-proxy"
base_url = "http://127.0.0.1:$gw_port/v1"
env_key = "FREE_LLM_PROXY_KEY"
wire_api = "responses"
TOML
out=$(cd "$work/project" && env -i PATH="$PATH" HOME="$work/home" CODEX_HOME="$work/home" TERM=dumb \
  FREE_LLM_PROXY_KEY=team-key-123456 timeout 120 "$codex" exec --skip-git-repo-check \
  --color never "What is the secret in marker.txt?" 2>&1 </dev/null || true)
echo "codex said (tail):"; tail -12 <<<"$out"
echo "upstream saw:"; cat "$work/mock.log"
grep -c "request_done" "$work/gateway.log" | sed "s/^/request_done lines: /"
if grep -q "Tool said: .*" <<<"$out" && grep -q "$secret" <<<"$out" && grep -q '"tools": [1-9]' "$work/mock.log"; then
  echo "RESULT: ok"
else
  echo "RESULT: FAILED"; tail -20 "$work/gateway.log"; exit 1
fi
