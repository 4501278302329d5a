#!/usr/bin/env python3
"""Manual check: the official `anthropic` Python SDK against the gateway's Anthropic front.

Not part of `cargo test`. Needs `pip install anthropic`.

    python3 tests/clients/anthropic_sdk.py

boots tests/clients/mock_upstream.py (in-process) and the gateway (target/debug/free-llm-proxy,
or $GATEWAY_BIN) on free 127.0.0.1 ports, then drives: one non-streamed call, one streamed
call, a streamed tool call (the SDK reassembles input_json_delta fragments), a tool_result
turn, and count_tokens. To use a gateway that is already running (with a mock behind it):

    GATEWAY_URL=http://127.0.0.1:8080 GATEWAY_KEY=<client key> python3 tests/clients/anthropic_sdk.py

Exits 0 when every check passed.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import anthropic

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import mock_upstream  # noqa: E402

CLIENT_KEY = "sdk-check-client-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def boot():
    """Start the mock and the gateway; returns (gateway_url, key, cleanup)."""
    mock_port, port, metrics_port = free_port(), free_port(), free_port()
    mock = mock_upstream.serve(mock_port)
    workdir = tempfile.mkdtemp(prefix="anthropic-sdk-check-")
    config = {
        "listen": f"127.0.0.1:{port}",
        "metrics_listen": f"127.0.0.1:{metrics_port}",
        "state_dir": os.path.join(workdir, "state"),
        "upstream": {
            "base_url": f"http://127.0.0.1:{mock_port}/api/v1",
            "api_keys": ["sk-or-mock-key-0001"],
        },
        "models": {"source_url": f"http://127.0.0.1:{mock_port}/top-models"},
        "auth": {"client_keys": [{"name": "sdk", "key": CLIENT_KEY}]},
    }
    config_path = os.path.join(workdir, "config.yaml")
    with open(config_path, "w") as f:
        json.dump(config, f)  # JSON is YAML
    binary = os.environ.get("GATEWAY_BIN") or os.path.join(REPO, "target", "debug", "free-llm-proxy")
    if not os.path.exists(binary):
        subprocess.run(["cargo", "build", "--quiet"], cwd=REPO, check=True)
    log = open(os.path.join(workdir, "gateway.log"), "w")
    gateway = subprocess.Popen(
        [binary, "--config", config_path], stdout=log, stderr=subprocess.STDOUT, cwd=workdir
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    else:
        gateway.kill()
        sys.exit("gateway did not become healthy; log in " + log.name)

    def cleanup():
        gateway.terminate()
        try:
            gateway.wait(timeout=10)
        except subprocess.TimeoutExpired:
            gateway.kill()
        mock.shutdown()

    return url, CLIENT_KEY, cleanup


def check(label, condition, detail=""):
    print(("ok   " if condition else "FAIL ") + label + (f" ({detail})" if detail else ""))
    return condition


def main():
    url = os.environ.get("GATEWAY_URL")
    if url:
        key, cleanup = os.environ.get("GATEWAY_KEY", "unused"), (lambda: None)
    else:
        url, key, cleanup = boot()
    results = []
    try:
        client = anthropic.Anthropic(base_url=url + "/anthropic", api_key=key, max_retries=0)
        # Any name the snapshot does not list routes by rank; `auto` says so explicitly.
        model = "auto"
        user = [{"role": "user", "content": "say hello"}]

        # 1. Non-streamed.
        message = client.messages.create(model=model, max_tokens=4096, messages=user, system="be brief")
        text = "".join(b.text for b in message.content if b.type == "text")
        results.append(check("non-streamed text", text.startswith("hello from "), text))
        results.append(check("non-streamed stop_reason", message.stop_reason == "end_turn", message.stop_reason))
        results.append(check("non-streamed usage", message.usage.input_tokens > 0, str(message.usage)))

        # 2. Streamed text.
        with client.messages.stream(model=model, max_tokens=128000, messages=user) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
        results.append(check("streamed text", "".join(pieces).startswith("hello from "), "".join(pieces)))
        results.append(check("streamed final message", final.stop_reason == "end_turn", final.stop_reason))
        results.append(check("streamed usage from message_delta", final.usage.output_tokens == 7, str(final.usage)))

        # 3. Streamed tool call: the SDK assembles the partial JSON into `input`.
        tools = [
            {
                "name": "Read",
                "description": "Read a file",
                "input_schema": {
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "properties": {"file_path": {"type": "string"}},
                    "required": ["file_path"],
                },
            }
        ]
        ask = [{"role": "user", "content": "read the file"}]
        with client.messages.stream(model=model, max_tokens=4096, messages=ask, tools=tools) as stream:
            final = stream.get_final_message()
        tool_uses = [b for b in final.content if b.type == "tool_use"]
        results.append(check("streamed tool_use block", len(tool_uses) == 1, str(final.content)))
        results.append(check("tool stop_reason", final.stop_reason == "tool_use", final.stop_reason))
        if tool_uses:
            tool = tool_uses[0]
            results.append(check("tool input reassembled", "file_path" in tool.input, json.dumps(tool.input)))
            # 4. The tool result goes back; the model answers with it.
            turn2 = ask + [
                {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "42 lines"}],
                },
            ]
            answer = client.messages.create(model=model, max_tokens=4096, messages=turn2, tools=tools)
            text = "".join(b.text for b in answer.content if b.type == "text")
            results.append(check("tool_result round trip", "42 lines" in text, text))

        # 5. count_tokens (local).
        counted = client.messages.count_tokens(model=model, messages=user, system="be brief")
        results.append(check("count_tokens", counted.input_tokens > 0, str(counted.input_tokens)))

        # 6. An error in the Anthropic shape becomes the SDK's typed exception (needs client
        # keys: always so for the gateway booted here).
        if os.environ.get("GATEWAY_URL") and not os.environ.get("GATEWAY_KEY"):
            return finish(results)
        try:
            anthropic.Anthropic(base_url=url + "/anthropic", api_key="wrong", max_retries=0).messages.create(
                model=model, max_tokens=10, messages=user
            )
            results.append(check("401 raises AuthenticationError", False, "no error"))
        except anthropic.AuthenticationError as e:
            results.append(check("401 raises AuthenticationError", e.status_code == 401, str(e)))
    finally:
        cleanup()
    return finish(results)


def finish(results):
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
