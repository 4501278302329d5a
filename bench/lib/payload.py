#!/usr/bin/env python3
"""Write the benchmark's request bodies (deterministic): chat-2k.json (~2 KiB, a
realistic multi-turn chat request), chat-200k.json (~200 KiB: the same with a long
pasted file), stream-2k.json (chat-2k with "stream": true).
Usage: payload.py OUT_DIR"""
import json
import sys

out = sys.argv[1]

system = (
    "You are a careful senior software engineer helping a teammate. Answer concisely, "
    "prefer concrete code over prose, point out bugs and risky assumptions, and say so "
    "when you are unsure. When you show code, show only the parts that change, with "
    "enough context to apply the change. Use the project's existing style: Rust 2021, "
    "no unwrap() outside tests, errors carried with context, logging through the log "
    "crate. Never invent APIs: if a function you need might not exist, say so."
)
user1 = (
    "Our gateway reads the whole request body before routing. For a 2 KiB body that is "
    "fine, but agents sometimes send 200 KiB of pasted files. Here is the read loop:\n\n"
    "```rust\nlet mut body = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));\n"
    "loop {\n    match session.read_request_body().await {\n        Ok(Some(chunk)) => body.extend_from_slice(&chunk),\n"
    "        Ok(None) => return Ok(body.freeze()),\n        Err(e) => return Err(e.into()),\n    }\n}\n```\n\n"
    "Is there a copy we can avoid?"
)
assistant1 = (
    "Yes: when the body arrives in a single chunk you can keep that Bytes as is instead "
    "of copying it into a BytesMut. Only when a second chunk arrives do you need to start "
    "accumulating. The pre-sized buffer avoids regrowth, so the remaining cost is one "
    "memcpy per byte, which is small next to parsing the JSON. Measure before and after "
    "with a 200 KiB body: the difference should show up as fewer instructions per request."
)
user2 = (
    "Makes sense. Second question: we splice the chosen model id into the original bytes "
    "instead of re-serialising the JSON. Could that ever produce invalid JSON if the "
    "client sends the model field twice, or uses escapes in the key, like \"mod\\u0065l\"? "
    "Give me a short list of cases to test, then a test skeleton."
)


def body(extra_user=None, stream=False):
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": user1},
        {"role": "assistant", "content": assistant1},
        {"role": "user", "content": user2 if extra_user is None else user2 + "\n\n" + extra_user},
    ]
    doc = {"model": "auto", "messages": messages, "temperature": 0.2, "top_p": 0.95, "max_tokens": 1024}
    if stream:
        doc["stream"] = True
    return json.dumps(doc, separators=(",", ":")).encode()


# ~200 KiB of "pasted source": realistic escapes (newlines, quotes, backslashes).
line = 'fn handler_{i}(req: &Request) -> Result<Response, Error> {{ let v = req.get("k_{i}").ok_or("missing \\"k\\"")?; Ok(Response::text(format!("{{v}}\\n"))) }}\n'
paste = "Here is the whole file for context:\n```rust\n"
i = 0
while len(json.dumps(paste)) < 200 * 1024 - 2600:
    paste += line.format(i=i)
    i += 1
paste += "```"

files = {
    "chat-2k.json": body(),
    "chat-200k.json": body(paste),
    "stream-2k.json": body(stream=True),
}
for name, data in files.items():
    with open(f"{out}/{name}", "wb") as f:
        f.write(data)
    json.loads(data)
    print(f"{name} {len(data)} bytes")
