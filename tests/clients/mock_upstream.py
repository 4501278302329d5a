#!/usr/bin/env python3
"""A small stand-in for OpenRouter, for the manual client checks in tests/clients/.

Standard library only. It serves, on 127.0.0.1:
  GET  /top-models                 a two-model ranked list (the gateway's models.source_url)
  POST /api/v1/chat/completions    chat completions, streamed (SSE) or not

Answers are decided from the request, so real clients can run an agent loop against it:
  - the request has tools and no `role: "tool"` message yet -> one tool call:
      MOCK_TOOL (default "Read") when the request offers it, with the JSON arguments in
      MOCK_TOOL_ARGS (default {"file_path": MOCK_READ_PATH}); else the first tool, {} args
  - the last message is a tool result -> "The tool returned: <its first 200 chars>"
  - otherwise -> "hello from <model>"
Streams split text and tool arguments over several chunks and end with a usage chunk
and [DONE], like OpenRouter. Every chat request is appended as one JSON line to MOCK_LOG
(when set): model, stream, max_tokens, message roles, tool names.

Run: python3 tests/clients/mock_upstream.py --port 18090
"""

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODELS = {
    "updatedAt": "2026-04-25T03:17:45.681Z",
    "fallback": {"id": "openrouter/free"},
    "models": [
        {
            "rank": 1,
            "id": "mock/agent-model:free",
            "contextLength": 262144,
            "maxCompletionTokens": 32768,
            "supportsTools": True,
            "supportsToolChoice": True,
            "supportsStructuredOutputs": True,
            "supportsReasoning": False,
        },
        {
            "rank": 2,
            "id": "mock/second-model:free",
            "contextLength": 131072,
            "maxCompletionTokens": 8192,
            "supportsTools": True,
        },
    ],
}

LOG_LOCK = threading.Lock()


def decide(body):
    """(text, tool_call or None) for a chat request body."""
    messages = body.get("messages") or []
    tools = body.get("tools") or []
    has_tool_result = any(m.get("role") == "tool" for m in messages)
    if tools and not has_tool_result:
        names = [t.get("function", {}).get("name") for t in tools]
        wanted = os.environ.get("MOCK_TOOL", "Read")
        if wanted in names:
            default_args = {"file_path": os.environ.get("MOCK_READ_PATH", "/etc/hostname")}
            args = json.loads(os.environ.get("MOCK_TOOL_ARGS") or json.dumps(default_args))
            name = wanted
        else:
            name, args = names[0], {}
        return "I will use a tool.", {"id": "call_mock_1", "name": name, "arguments": json.dumps(args)}
    if messages and messages[-1].get("role") == "tool":
        content = messages[-1].get("content") or ""
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return "The tool returned: " + content[:200], None
    return "hello from " + str(body.get("model")), None


def completion(model, text, tool_call, prompt_tokens):
    message = {"role": "assistant", "content": text}
    finish = "stop"
    if tool_call:
        message["tool_calls"] = [
            {
                "id": tool_call["id"],
                "type": "function",
                "function": {"name": tool_call["name"], "arguments": tool_call["arguments"]},
            }
        ]
        finish = "tool_calls"
    return {
        "id": "gen-mock",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 7,
            "total_tokens": prompt_tokens + 7,
        },
    }


def chunk(model, delta, finish=None, usage=None):
    c = {
        "id": "gen-mock",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        c["usage"] = usage
    return "data: " + json.dumps(c) + "\n\n"


def stream_events(model, text, tool_call, prompt_tokens):
    yield ": OPENROUTER PROCESSING\n\n"
    yield chunk(model, {"role": "assistant", "content": ""})
    for i in range(0, len(text), 6):
        yield chunk(model, {"content": text[i : i + 6]})
    if tool_call:
        yield chunk(
            model,
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": tool_call["id"],
                        "type": "function",
                        "function": {"name": tool_call["name"], "arguments": ""},
                    }
                ]
            },
        )
        args = tool_call["arguments"]
        for i in range(0, len(args), 5):
            yield chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 5]}}]})
    yield chunk(model, {}, finish="tool_calls" if tool_call else "stop")
    yield chunk(
        model,
        {},
        usage={"prompt_tokens": prompt_tokens, "completion_tokens": 7, "total_tokens": prompt_tokens + 7},
    )
    yield "data: [DONE]\n\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep stderr for our own lines
        pass

    def _json(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.split("?")[0] == "/top-models":
            self._json(200, MODELS)
        else:
            self._json(404, {"error": {"code": 404, "message": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.split("?")[0] != "/api/v1/chat/completions":
            self._json(404, {"error": {"code": 404, "message": "not found"}})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._json(400, {"error": {"code": 400, "message": "invalid JSON"}})
            return
        model = body.get("model", "?")
        text, tool_call = decide(body)
        prompt_tokens = len(raw) // 4
        record = {
            "model": model,
            "stream": bool(body.get("stream")),
            "max_tokens": body.get("max_tokens"),
            "roles": [m.get("role") for m in body.get("messages", [])],
            "tools": [t.get("function", {}).get("name") for t in body.get("tools") or []],
            "answer": "tool_call " + tool_call["name"] if tool_call else "text",
        }
        print("mock upstream: " + json.dumps(record), file=sys.stderr, flush=True)
        log_path = os.environ.get("MOCK_LOG")
        if log_path:
            with LOG_LOCK, open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        if not body.get("stream"):
            self._json(200, completion(model, text, tool_call, prompt_tokens))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in stream_events(model, text, tool_call, prompt_tokens):
            data = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            time.sleep(0.005)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def serve(port):
    """Start the mock on 127.0.0.1:port in a daemon thread; returns the server."""
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"mock upstream on http://127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
