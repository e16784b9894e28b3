"""Reads the wrk outputs of scripts/bench-serve.sh and prints the table and the target checks."""
import os
import re
import sys
from pathlib import Path

work = Path(sys.argv[1])
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse(name):
    text = (work / f"{name}.txt").read_text()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        lat[pct] = float(m.group(1)) * UNIT[m.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errs = re.search(r"Socket errors:.*", text)
    return {"rps": rps, "p50": lat["50"], "p99": lat["99"], "non2xx": int(bad.group(1)) if bad else 0,
            "socket": errs.group(0) if errs else ""}


print("bench-serve: wrk on the same 2 cores as the server; bare = axum handler returning a constant,")
print("measured before and after the pm-serve runs at each concurrency (the reference is their mean)")
if os.environ.get("PM_BENCH_LOADGEN") == "batch":
    print("DIAGNOSTIC RUN: wrk as SCHED_BATCH (its wake-ups do not preempt the servers); the targets")
    print("are judged on the default run (make bench-serve), where wrk is an ordinary process")
print()
print("| scenario | c | req/s | p50 ms | p99 ms | non-2xx |")
print("|---|---|---|---|---|---|")
results = {}
for c in (1, 32):
    for name in ("bare1", "stateful", "reading", "window", "bare-window", "batch", "bare2"):
        r = parse(f"{name}-c{c}")
        results[(name, c)] = r
        label = {"bare1": "bare handler (before)", "bare2": "bare handler (after)", "stateful": "/predict stateful",
                 "reading": "/predict with a reading (recomputed)",
                 "window": "/predict window (48 h history)",
                 "bare-window": "bare handler, same 48 h body", "batch": "/predict/batch (100 machines)"}[name]
        print(f"| {label} | {c} | {r['rps']:,.0f} | {r['p50']:.3f} | {r['p99']:.3f} | {r['non2xx']} |")

def bare(c, key, scen="stateful"):
    if scen == "window":  # the reference received the same body
        return results[("bare-window", c)][key]
    return (results[("bare1", c)][key] + results[("bare2", c)][key]) / 2

ok = lambda b: "met" if b else "NOT met"
print()
print("| check | value | target | |")
print("|---|---|---|---|")
for scen in ("stateful", "window"):
    r = results[(scen, 32)]
    ratio = r["rps"] / bare(32, "rps", scen)
    print(f"| /predict {scen}: req/s / bare, c=32 | {ratio:.2f} ({r['rps']:,.0f} vs {bare(32, 'rps', scen):,.0f}) | >= 0.6 | {ok(ratio >= 0.6)} |")
    tail = r["p99"] / bare(32, "p99", scen)
    print(f"| /predict {scen}: p99 / bare p99, c=32 | {tail:.2f} ({r['p99']:.2f} vs {bare(32, 'p99', scen):.2f} ms) | <= 1.5 | {ok(tail <= 1.5)} |")
    r1 = results[(scen, 1)]
    print(f"| /predict {scen}: p99 at c=1 | {r1['p99']:.3f} ms | <= 1 ms | {ok(r1['p99'] <= 1.0)} |")
r = results[("reading", 32)]
print(f"| /predict with a reading (row and scores recomputed each request): req/s / bare, c=32 | {r['rps'] / bare(32, 'rps'):.2f} ({r['rps']:,.0f}), p99 {r['p99'] / bare(32, 'p99'):.2f} x bare | | |")
b = results[("batch", 32)]
print(f"| /predict/batch: predictions/s at c=32 | {100 * b['rps']:,.0f} | (100 per request) | |")
print(f"| the Python service (measured here) | 36 req/s, p99 958 ms at c=32 | | |")
print(f"| /predict stateful vs the Python service, c=32 | {results[('stateful', 32)]['rps'] / 36:,.0f}x req/s | | |")
# The yardstick: throughput lost to a known amount of CPU work per request, on the same body.
ref = bare(32, "rps", "window")
yard = {us: parse(f"busy{us}-c32") for us in (4, 8, 12)}
results.update({(f"busy{us}", 32): r for us, r in yard.items()})
ratios = " / ".join(f"{r['rps'] / ref:.2f}" for r in yard.values())
print(f"| yardstick: bare handler doing 4 / 8 / 12 µs of CPU work per window request: req/s / bare, c=32 | {ratios} | | |")
# The yardstick as a curve (0 µs is the bare handler itself), read both ways: the work per request
# at which a handler falls to 0.6 of the bare one in this run, and the work the window request
# behaves as. Linear between the measured points; the curve falls steepest at first.
curve = [(0.0, 1.0)] + [(float(us), r["rps"] / ref) for us, r in yard.items()]


def work_at(ratio):
    for (w0, r0), (w1, r1) in zip(curve, curve[1:]):
        if r1 <= ratio <= r0 and r0 > r1:
            return w0 + (r0 - ratio) / (r0 - r1) * (w1 - w0)
    return None


def fmt(w, ratio):
    if w is not None:
        return f"~{w:.1f} µs"
    return "< 0 µs" if ratio > curve[0][1] else f"> {curve[-1][0]:.0f} µs"


window_ratio = results[("window", 32)]["rps"] / ref
print(f"| yardstick read backwards: work per request at 0.6 of bare / the window request behaves as | "
      f"{fmt(work_at(0.6), 0.6)} / {fmt(work_at(window_ratio), window_ratio)} | | |")
for cost in (work / "window-cost.txt").read_text().strip().splitlines():
    print(f"| {cost} | | | |")
failed = sum(r["non2xx"] for r in results.values())
print(f"| non-2xx responses, all runs | {failed} | 0 | {ok(failed == 0)} |")
