#!/usr/bin/env python3
"""Turns the load generator's JSON lines (one per scenario, broker and run)
into the markdown table run.sh prints and writes to results.md.

Each figure is the median over the runs; correctness counts (reordered,
lost, acked-but-not-delivered, disconnects) are the worst run, because one
bad run is the news.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

BROKERS = [("mosquitto", "mosquitto"), ("pg1", "pulsegate (1 shard)"), ("pg2", "pulsegate (2 shards)")]

# scenario id -> (row label, kind)
SCENARIOS = [
    ("fanin_p1", "fan-in QoS 0, 1 pub -> 1 sub (msg/s received)", "rate"),
    ("fanin_p8", "fan-in QoS 0, 8 pubs -> 1 sub (msg/s received)", "rate"),
    ("fanin_p64", "fan-in QoS 0, 64 pubs -> 1 sub (msg/s received)", "rate"),
    ("fanin_qos1", "fan-in QoS 1, 8 pubs x window 64 -> 1 sub (msg/s acked)", "qos1"),
    ("fanout", "fan-out QoS 0, 1 pub -> 100 subs (msg/s received, total)", "rate"),
    ("latency", "latency QoS 0 at 20,000 msg/s, p50 / p99 / max (us, lower is better)", "latency"),
    ("idle", "idle connections: broker RSS per connection (bytes, 10,000 conns, lower is better)", "idle"),
]


def median(rows, key):
    vals = [r[key] for r in rows if key in r and r[key] is not None]
    return statistics.median(vals) if vals else None


def worst(rows, key):
    vals = [r[key] for r in rows if key in r]
    return max(vals) if vals else None


def k(n):
    if n is None:
        return "?"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e4:
        return f"{n / 1e3:.1f}k"
    return f"{n:.0f}"


def pct(x):
    return "?" if x is None else f"{100 * x:.2f}%"


def cell(kind, rows, failures):
    """Returns (text, primary figure or None)."""
    if not rows:
        return ("FAILED: " + "; ".join(sorted(set(failures))) if failures else "n/a"), None
    note = f" ({len(failures)} failed run(s))" if failures else ""
    if kind == "rate":
        rx = median(rows, "received_per_s")
        text = (f"**{k(rx)}/s** (sent {k(median(rows, 'sent_per_s'))}/s; delivered {pct(median(rows, 'delivered'))}; "
                f"reordered {worst(rows, 'reordered')})")
        primary = rx
    elif kind == "qos1":
        acked = median(rows, "acked_per_s")
        text = (f"**{k(acked)}/s** acked (rx {k(median(rows, 'received_per_s'))}/s; delivered {pct(median(rows, 'delivered'))}; "
                f"acked-not-delivered {worst(rows, 'acked_not_delivered')}; reordered {worst(rows, 'reordered')})")
        primary = acked
    elif kind == "latency":
        p50, p99, mx = median(rows, "p50_us"), median(rows, "p99_us"), median(rows, "max_us")
        text = (f"**{p50:.0f} / {p99:.0f}** / {mx:.0f} (delivered {pct(median(rows, 'delivered'))}; "
                f"reordered {worst(rows, 'reordered')})")
        primary = (p50, p99)
    else:  # idle
        b = median(rows, "bytes_per_conn")
        conn = min(r.get("connected", 0) for r in rows)
        text = f"**{b:.0f} B** ({conn}/{rows[0].get('connections')} connected; connect {median(rows, 'connect_s'):.1f} s)"
        primary = b
    disc = worst(rows, "disconnects")
    if disc:
        text += f"; {disc} disconnects"
    if any(r.get("drain_timeout") for r in rows):
        text += "; drain timed out"
    return text + note, primary


def times(r):
    """A ratio as "2.5x", or "1/2,800x" when far below 1."""
    return f"{r:.3g}x" if r >= 0.1 else f"1/{1 / r:,.0f}x"


def ratio(kind, mosq, pgs):
    pgs = [p for p in pgs if p is not None]
    if mosq is None or not pgs:
        return "n/a"
    if kind == "latency":
        best = min(pgs, key=lambda p: p[1])
        if not mosq[0] or not mosq[1]:
            return "n/a"
        return f"p50 {times(best[0] / mosq[0])}, p99 {times(best[1] / mosq[1])} (lower is better)"
    if kind == "idle":
        best = min(pgs)
        return f"{times(best / mosq)} (lower is better)" if mosq > 0 else "n/a"
    best = max(pgs)
    return f"{times(best / mosq)} (higher is better)" if mosq > 0 else "n/a"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--mode", default="")
    ap.add_argument("--load", default="")
    ap.add_argument("--nice", default="0")
    ap.add_argument("--mosquitto", default="")
    ap.add_argument("--pulsegate", default="")
    ap.add_argument("--out")
    a = ap.parse_args()

    data = [json.loads(l) for l in open(a.results) if l.strip()]
    seen = {d["scenario_id"] for d in data}

    lines = []
    lines.append("# pulsegate vs Mosquitto")
    lines.append("")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    when = time.localtime(os.path.getmtime(a.results))  # the last run's end
    lines.append(f"- when: {time.strftime('%Y-%m-%d %H:%M:%S %Z', when)}; host: {platform.node()}, {os.cpu_count()} cores ({cpu})")
    lines.append(f"- mode: {a.mode}; nice level of brokers and load generator: {a.nice}; "
                 f"load average (1/5/15 min) at start -> end: {a.load}")
    lines.append(f"- mosquitto: {a.mosquitto or '?'}, `persistence false`, `allow_anonymous true`, "
                 "`max_queued_messages 1000000`, `max_inflight_messages 1000` (raised so that the subscriber side "
                 "is not the limiting factor)")
    lines.append(f"- pulsegate: {a.pulsegate}; `shards = 1` and `shards = 2`, `allow_anonymous = true`, "
                 "`max_queued_messages = 1000000`, `max_inflight = 1000`, fresh data dir")
    lines.append("- the load generator (one thread, MQTT 3.1.1) runs on the same cores as the broker; every broker "
                 "is started fresh for every run")
    try:
        load = float(a.load.split()[0])
    except (ValueError, IndexError):
        load = 0.0
    if load > 0.5 * (os.cpu_count() or 1):
        lines.append(f"- **WARNING: the machine was busy when the run started (load average {load:.2f} on "
                     f"{os.cpu_count()} cores): the figures are depressed and noisy, compare the CPU table**")
    lines.append("- cells: median over the runs; reordered / acked-not-delivered / disconnects: worst run")
    lines.append("")
    head = ["scenario"] + [name for _, name in BROKERS] + ["best pulsegate / mosquitto"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    cpu_rows = []
    for sid, label, kind in SCENARIOS:
        if sid not in seen:
            continue
        texts, prims, cpus = [], {}, []
        for bid, _ in BROKERS:
            rows = [d for d in data if d["scenario_id"] == sid and d["broker"] == bid and "error" not in d]
            fails = [d["error"] for d in data if d["scenario_id"] == sid and d["broker"] == bid and "error" in d]
            t, p = cell(kind, rows, fails)
            texts.append(t)
            prims[bid] = p
            bc, lc = median(rows, "broker_cpu_pct"), median(rows, "loadgen_cpu_pct")
            cpus.append("n/a" if bc is None else f"{bc:.0f}% / {lc:.0f}%")
        r = ratio(kind, prims["mosquitto"], [prims["pg1"], prims["pg2"]])
        lines.append(f"| {label} | " + " | ".join(texts) + f" | {r} |")
        if kind != "idle":
            cpu_rows.append(f"| {sid} | " + " | ".join(cpus) + " |")
    if cpu_rows:
        lines.append("")
        lines.append("CPU over each run, median (% of one core): broker / load generator")
        lines.append("")
        lines.append("| scenario | " + " | ".join(name for _, name in BROKERS) + " |")
        lines.append("|" + "---|" * (len(BROKERS) + 1))
        lines.extend(cpu_rows)
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
