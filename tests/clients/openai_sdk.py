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
