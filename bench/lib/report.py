#!/usr/bin/env python3
"""Turn one bench/run.sh run into the table and the target verdicts.

usage: report.py TMP_DIR key=value...   (reads TMP_DIR/results.tsv and ttfb-*.txt)"""
import csv
import datetime
import os
import platform
import statistics
import sys

tmp = sys.argv[1]
meta = dict(a.split("=", 1) for a in sys.argv[2:])
rows = list(csv.DictReader(open(os.path.join(tmp, "results.tsv")), delimiter="\t"))
for r in rows:
    for k in ("rps", "p50_us", "p90_us", "p99_us", "max_us", "cpu_load", "cpu_mock", "cpu_proxy", "cpu_all", "wall"):
        r[k] = float(r[k])
    r["conc"] = int(r["conc"])
    r["errors"] = int(r["errors"])


NUMERIC = ("rps", "p50_us", "p90_us", "p99_us", "max_us", "cpu_load", "cpu_mock", "cpu_proxy", "cpu_all", "wall")
_cache = {}


def find(test, target, conc):
    """The median over rounds of one (test, target, concurrency) cell; `spread` is
    (max - min) / median of its RPS, `n` the number of rounds."""
    key = (test, target, conc)
    if key not in _cache:
        runs = [r for r in rows if r["test"] == test and r["target"] == target and r["conc"] == conc]
        if not runs:
            _cache[key] = None
        else:
            m = dict(runs[0])
            for k in NUMERIC:
                m[k] = statistics.median(r[k] for r in runs)
            m["errors"] = sum(r["errors"] for r in runs)
            rps = [r["rps"] for r in runs]
            m["spread"] = (max(rps) - min(rps)) / m["rps"] if m["rps"] else 0
            m["n"] = len(runs)
            _cache[key] = m
    return _cache[key]


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


out = []
p = out.append
p(f"free-llm-proxy load benchmark, {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")
p(f"machine: {os.cpu_count()} CPUs, {cpu_model()}, kernel {platform.release()}; "
  f"load avg before {meta.get('load_before')}, after {meta.get('load_after')}")
p(f"gateway threads {meta['gw_threads']}, nginx proxy workers {meta['nginx_workers']}, mock nginx 1 process, "
  f"wrk threads {meta['wrk_threads']}, pinning {'wrk on CPU 1, servers on CPU 0' if meta['pin'] == '1' else 'none'}, "
  f"{meta['duration']} s per run, {meta.get('rounds', '1')} interleaved rounds (medians shown; spread = RPS (max-min)/median)")
p("")
p("Load (wrk, keep-alive). ovh = p50/p99 minus direct's; RPS/ngx and lat/ngx = this proxy / the nginx proxy.")
p("CPU columns: cores used on average during the run by wrk / mock / proxy, all = whole machine;")
p("us/req = the proxy's own CPU time per request.")
hdr = f"{'body':<5} {'conc':>4}  {'target':<8} {'RPS':>8} {'p50 us':>8} {'p99 us':>8}  {'RPS/dir':>7} {'RPS/ngx':>7}  {'ovh p50':>8} {'ovh p99':>8} {'lat/ngx p50,p99':>16}  {'wrk':>4} {'mock':>4} {'prox':>4} {'all':>4} {'us/req':>6} {'spread':>6} err"
p(hdr)
p("-" * len(hdr))
for test in ("2k", "200k"):
    concs = sorted({r["conc"] for r in rows if r["test"] == test})
    for conc in concs:
        d, n = find(test, "direct", conc), find(test, "nginx", conc)
        for target in ("direct", "nginx", "pingora", "gateway"):
            r = find(test, target, conc)
            if not r:
                continue
            w = r["wall"] or 1
            rd = f"{r['rps'] / d['rps']:.2f}" if d else "-"
            rn = f"{r['rps'] / n['rps']:.2f}" if n and target in ("gateway", "pingora") else ""
            o50 = f"{r['p50_us'] - d['p50_us']:+.0f}" if d and target != "direct" else ""
            o99 = f"{r['p99_us'] - d['p99_us']:+.0f}" if d and target != "direct" else ""
            lat = f"{r['p50_us'] / n['p50_us']:.2f},{r['p99_us'] / n['p99_us']:.2f}" if n and target in ("gateway", "pingora") else ""
            reqs = r["rps"] * float(meta["duration"])
            us_req = f"{r['cpu_proxy'] * 1e6 / reqs:.1f}" if target != "direct" and reqs else ""
            p(f"{test:<5} {conc:>4}  {target:<8} {r['rps']:>8.0f} {r['p50_us']:>8.0f} {r['p99_us']:>8.0f}  {rd:>7} {rn:>7}  {o50:>8} {o99:>8} {lat:>16}  "
              f"{r['cpu_load'] / w:>4.2f} {r['cpu_mock'] / w:>4.2f} {r['cpu_proxy'] / w:>4.2f} {r['cpu_all'] / w:>4.2f} {us_req:>6} {100 * r['spread']:>5.0f}% {r['errors']}")
    p("")

# streaming TTFB
ttfb = {}
for target in ("direct", "nginx", "pingora", "gateway"):
    path = os.path.join(tmp, f"ttfb-{target}.txt")
    if not os.path.exists(path):
        continue
    vals = []
    bad = 0
    for line in open(path):
        code, t = line.split()
        if code != "200":
            bad += 1
        vals.append(float(t) * 1e6)
    vals = vals[10:]  # the first ones include connecting
    vals.sort()
    ttfb[target] = (statistics.median(vals), vals[int(len(vals) * 0.99) - 1], len(vals), bad)
if ttfb:
    p("Streaming TTFB (curl time_starttransfer, one kept-alive connection, first 10 dropped)")
    for target, (p50, p99, n, bad) in ttfb.items():
        extra = ""
        if target != "direct" and "direct" in ttfb:
            extra = f"  overhead p50 {p50 - ttfb['direct'][0]:+.0f} us, p99 {p99 - ttfb['direct'][1]:+.0f} us"
        p(f"  {target:<8} p50 {p50:7.0f} us  p99 {p99:7.0f} us  (n={n}, non-200: {bad}){extra}")
    p("")

# memory
kb = lambda v: f"{int(v) / 1024:.1f} MB" if v else "-"
p("Gateway memory (VmRSS)")
p(f"  gateway 1: idle after start {kb(meta.get('rss_idle'))}, idle after the load matrix {kb(meta.get('rss_after_load'))}")
mem = meta.get("mem", "").split()
if len(mem) >= 5:
    idle2, streams_rss, after2, open_up, ready = mem[:5]
    failed = mem[5] if len(mem) > 5 else "?"
    p(f"  gateway 2: idle {kb(idle2)}, with {ready}/{meta['streams']} client streams open "
      f"({open_up} open upstream at the mock) {kb(streams_rss)}, after they closed {kb(after2)}; failed streams {failed}")
p("")

# fallback
fb_n = [r for r in rows if r["test"] == "fb-normal"]  # per round (not medians)
fb_c = [r for r in rows if r["test"] == "fb-cooling"]
if fb_n and fb_c:
    n50 = statistics.median(r["p50_us"] for r in fb_n)
    c50 = statistics.median(r["p50_us"] for r in fb_c)
    n99 = statistics.median(r["p99_us"] for r in fb_n)
    c99 = statistics.median(r["p99_us"] for r in fb_c)
    p(f"Fallback (gateway 2 -> bench/mock, c=1, {len(fb_n)} rounds each, medians): rank-1 answering p50 {n50:.0f} us p99 {n99:.0f} us; "
      f"rank-1 cooling p50 {c50:.0f} us p99 {c99:.0f} us; cost {c50 - n50:+.1f} us; "
      f"extra rank-1 upstream calls while cooling: {meta.get('fallback_extra') or '?'}")
    p("")

# targets
verdicts = []


def target(name, ok, value):
    verdicts.append((name, ok, value))


d1, g1 = find("2k", "direct", 1), find("2k", "gateway", 1)
if d1 and g1:
    target("non-stream overhead c=1 p50 <= 100 us", g1["p50_us"] - d1["p50_us"] <= 100, f"{g1['p50_us'] - d1['p50_us']:+.0f} us")
    target("non-stream overhead c=1 p99 <= 300 us", g1["p99_us"] - d1["p99_us"] <= 300, f"{g1['p99_us'] - d1['p99_us']:+.0f} us")
for conc in (16, 64, 256):
    g, n = find("2k", "gateway", conc), find("2k", "nginx", conc)
    if g and n:
        target(f"throughput c={conc} >= 80% of nginx", g["rps"] >= 0.8 * n["rps"], f"{100 * g['rps'] / n['rps']:.0f}% ({g['rps']:.0f} vs {n['rps']:.0f})")
g, n = find("2k", "gateway", 64), find("2k", "nginx", 64)
if g and n:
    target("latency c=64 p50 <= 1.5x nginx", g["p50_us"] <= 1.5 * n["p50_us"], f"{g['p50_us'] / n['p50_us']:.2f}x ({g['p50_us']:.0f} vs {n['p50_us']:.0f} us)")
    target("latency c=64 p99 <= 1.5x nginx", g["p99_us"] <= 1.5 * n["p99_us"], f"{g['p99_us'] / n['p99_us']:.2f}x ({g['p99_us']:.0f} vs {n['p99_us']:.0f} us)")
for conc in sorted({r["conc"] for r in rows if r["test"] == "200k"}):
    g, n = find("200k", "gateway", conc), find("200k", "nginx", conc)
    if g and n:
        target(f"200 KiB body c={conc} >= 60% of nginx", g["rps"] >= 0.6 * n["rps"], f"{100 * g['rps'] / n['rps']:.0f}% ({g['rps']:.0f} vs {n['rps']:.0f})")
if "gateway" in ttfb and "direct" in ttfb:
    o = ttfb["gateway"][0] - ttfb["direct"][0]
    target("streaming TTFB overhead p50 <= 200 us", o <= 200, f"{o:+.0f} us")
if meta.get("rss_idle"):
    v = int(meta["rss_idle"]) / 1024
    target("RSS idle <= 30 MB", v <= 30, f"{v:.1f} MB")
if len(mem) >= 5:
    v = int(mem[1]) / 1024
    ok = v <= 150 and mem[4] == meta["streams"]
    target(f"RSS with {meta['streams']} open streams <= 150 MB", ok, f"{v:.1f} MB ({mem[4]} streams open)")
if fb_n and fb_c:
    extra = int(meta.get("fallback_extra") or 0)
    target("fallback: no extra upstream call", extra == 0, f"{extra} extra rank-1 calls")
    target("fallback: adds <= 20 us (p50)", c50 - n50 <= 20, f"{c50 - n50:+.1f} us")
floor = [(find(t, "gateway", c), find(t, "pingora", c)) for t in ("2k", "200k") for c in sorted({r["conc"] for r in rows})]
floor = [(g, f) for g, f in floor if g and f]
if floor:
    p("Gateway vs the plain Pingora proxy (same framework, no gateway logic): " + ", ".join(
        f"{g['test']} c={g['conc']} {100 * g['rps'] / f['rps']:.0f}% of its RPS" for g, f in floor))
    p("")
errors = sum(r["errors"] for r in rows)
target("no failed requests in the load runs", errors == 0, f"{errors} errors")
p("Targets (gateway)")
for name, ok, value in verdicts:
    p(f"  {'PASS' if ok else 'FAIL'}  {name:<44} {value}")
print("\n".join(out))
