#!/usr/bin/env python3
"""Manual client check: the official `openai` SDK against a running gateway.
Usage: openai_sdk.py BASE_URL API_KEY EXPECTED_TEXT"""
import sys

from openai import OpenAI

base_url, api_key, expected = sys.argv[1:4]
client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0)

raw = client.chat.completions.with_raw_response.create(
    model="auto", messages=[{"role": "user", "content": "Hi"}], max_tokens=128000)
reply = raw.parse()
assert expected in reply.choices[0].message.content, reply
print("non-stream ok:", raw.headers["x-free-llm-proxy-model"], "attempts", raw.headers["x-free-llm-proxy-attempts"])

text = ""
for chunk in client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Hi"}], stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
assert expected in text, text
print("stream ok:", text.strip())

models = [m.id for m in client.models.list()]
assert models[0] == "auto", models
print("models ok:", len(models), "entries, first", models[0])

# The Responses API (SPEC §13): non-streamed, streamed, and a function tool round trip.
resp = client.responses.create(model="auto", instructions="Be brief.", input="Hi")
assert expected in resp.output_text, resp
assert resp.status == "completed" and resp.id.startswith("resp_"), resp
print("responses ok:", resp.model, resp.usage.total_tokens, "tokens")

events = list(client.responses.create(model="auto", input="Hi", stream=True))
kinds = [e.type for e in events]
assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
assert expected in streamed, streamed
assert expected in events[-1].response.output_text
print("responses stream ok:", len(events), "events")

weather = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}
first = client.responses.create(model="auto", input="Weather in Paris?", tools=[weather])
call = next(item for item in first.output if item.type == "function_call")
assert call.name == "get_weather" and '"Paris"' in call.arguments, call
history = [{"role": "user", "content": "Weather in Paris?"}, call.model_dump(exclude_none=True),
           {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}]
second = client.responses.create(model="auto", input=history, tools=[weather])
assert "sunny, 21 C" in second.output_text, second
print("responses tool ok:", call.call_id, "->", second.output_text.strip())
