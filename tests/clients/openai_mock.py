#!/usr/bin/env python3
"""A tiny OpenAI-compatible upstream for the manual client checks (loopback only).

Serves the model list on GET /top-models and chat completions on
POST /api/v1/chat/completions, streamed or not. Every answer says MOCK_REPLY;
requests are appended, one JSON line each, to the file named by MOCK_LOG.
MOCK_TOOL="name:{json args};..." makes it call the first of those tools the request
offers (unless the last message is already a tool result, which it then quotes:
"Tool said: ...").
Usage: openai_mock.py PORT
"""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
LIST = open(os.path.join(HERE, "..", "..", "conf", "embedded-top-models.json"), "rb").read()
REPLY = os.environ.get("MOCK_REPLY", "Hello from the mock upstream.")
TOOLS = dict(t.split(":", 1) for t in os.environ.get("MOCK_TOOL", "").split(";") if ":" in t)


def planned_call(req):
    """(name, arguments) of the tool call to make, or None."""
    messages = req.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return None
    for tool in req.get("tools") or []:
        name = tool.get("function", {}).get("name")
        if name in TOOLS:
            return name, TOOLS[name]
    return None


def reply_text(req):
    messages = req.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return "Tool said: " + str(messages[-1].get("content"))
    return REPLY


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, ctype, body):
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.send(200, "application/json", LIST)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        req = json.loads(body)
        if os.environ.get("MOCK_LOG"):
            with open(os.environ["MOCK_LOG"], "a") as log:
                log.write(json.dumps({"model": req.get("model"), "stream": req.get("stream"),
                                      "max_tokens": req.get("max_tokens"), "tools": len(req.get("tools") or [])}) + "\n")
        model = req.get("model", "mock")
        call = planned_call(req)
        text = reply_text(req)
        if not req.get("stream"):
            if call:
                message = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_mock_1", "type": "function", "function": {"name": call[0], "arguments": call[1]}}]}
            else:
                message = {"role": "assistant", "content": text}
            answer = {"id": "mock-1", "object": "chat.completion", "created": int(time.time()), "model": model,
                      "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if call else "stop"}],
                      "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
            return self.send(200, "application/json", json.dumps(answer).encode())
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def chunk(data):
            payload = data.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            self.wfile.flush()

        base = {"id": "mock-1", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        chunk(": OPENROUTER PROCESSING\n\n")
        chunk("data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}) + "\n\n")
        if call:
            first = {"index": 0, "id": "call_mock_1", "type": "function", "function": {"name": call[0], "arguments": ""}}
            chunk("data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {"tool_calls": [first]}}]}) + "\n\n")
            for i in range(0, len(call[1]), 8):
                part = {"index": 0, "function": {"arguments": call[1][i:i + 8]}}
                chunk("data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {"tool_calls": [part]}}]}) + "\n\n")
        else:
            for word in text.split(" "):
                chunk("data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {"content": word + " "}}]}) + "\n\n")
        finish = "tool_calls" if call else "stop"
        chunk("data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}) + "\n\n")
        chunk("data: " + json.dumps({**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}) + "\n\n")
        chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
