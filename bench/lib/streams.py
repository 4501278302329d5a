#!/usr/bin/env python3
"""Hold N streaming chat requests open at once (client side of the memory test).

usage: streams.py HOST PORT PATH BODY_FILE N HOLD_SECS
Opens N connections (in batches), sends the streaming request on each, waits for its
first content event, prints "READY <n> <secs>" once all N have content (or after 30 s),
keeps every stream open for HOLD_SECS more (reading what arrives), then closes them all
and prints "DONE ok=<n> failed=<n>". Bounded: exits after at most 30 + HOLD_SECS + 10 s.
"""
import asyncio
import sys
import time

host, port, path, body_file, n, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
body = open(body_file, "rb").read()
request = (
    f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    f"Accept: text/event-stream\r\nAuthorization: Bearer bench\r\nContent-Length: {len(body)}\r\n\r\n"
).encode() + body

ready = 0
all_ready = asyncio.Event()
release = asyncio.Event()
failed = 0


async def one():
    global ready, failed
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        failed += 1
        return
    try:
        writer.write(request)
        await writer.drain()
        seen = b""
        while b"data: {" not in seen:
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionError("closed before content")
            seen += chunk
        if b" 200 " not in seen.split(b"\r\n", 1)[0]:
            raise ConnectionError(seen.split(b"\r\n", 1)[0].decode(errors="replace"))
        ready += 1
        if ready == n:
            all_ready.set()
        while not release.is_set():
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout=0.5)
            except asyncio.TimeoutError:
                continue
            if not chunk:
                break
    except (OSError, ConnectionError) as e:
        failed += 1
        if failed <= 3:
            print(f"stream failed: {e}", file=sys.stderr, flush=True)
    finally:
        writer.close()


async def main():
    start = time.monotonic()
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one()))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    try:
        await asyncio.wait_for(all_ready.wait(), timeout=30)
    except asyncio.TimeoutError:
        pass
    print(f"READY {ready} {time.monotonic() - start:.2f}", flush=True)
    await asyncio.sleep(hold)
    release.set()
    await asyncio.wait(tasks, timeout=10)
    print(f"DONE ok={ready} failed={failed}", flush=True)


asyncio.run(main())
