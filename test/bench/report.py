#!/usr/bin/env python3
"""Turns the load generator's JSON lines (one per scenario, broker and run)
into the markdown table run.sh prints and writes to results.md.

Each figure is the median over the runs; correctness counts (reordered,
lost, acked-but-not-delivered, disconnects, stored minus acknowledged) are
the worst run, because one bad run is the news.

Telemetry rows get a second table (readings, points, delivered/acked, bytes
written per point, stored vs acknowledged points) and the store-only query
bench (scenario `query`, broker "store") a third. The rules scenarios
(rules_throughput, rules_latency: brokers mosquitto, pg1, pg1_rules, pg2,
pg2_rules; heartbeat_tick: broker "evaluator") get a section of their own, and
so does alert delivery (delivery: brokers pg1, pg2; pulsegate-hookbench).
The bridge scenarios (bridge_forward, bridge_drain: each broker bridging to
an upstream Mosquitto) are rows of the main table and get a section with
the details.
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
    ("telemetry_commit", "telemetry QoS 1, {devices:,} devices x window {window}, 4 metrics, durability commit "
     "(points/s acked)", "telemetry"),
    ("telemetry_relaxed", "telemetry QoS 1, same load, durability relaxed (points/s acked)", "telemetry"),
    ("bridge_forward", "bridge forward: {devices} devices x window {window}, QoS 1 -> bridge -> upstream Mosquitto "
     "(msg/s arrived upstream)", "bridge_forward"),
    ("bridge_drain", "bridge drain: {count:,} QoS 1 readings queued during an outage, upstream started again "
     "(msg/s arrived upstream, first -> last; and from upstream start)", "bridge_drain"),
]

# The target for durability commit on a 2-core machine.
TARGET_POINTS_PER_S = 500_000

# Issue 5's targets: throughput with 1,000 rules >= 0.8 x without; detection
# p99 under 2 ms under 20k readings/s.
TARGET_RULES_RATIO = 0.8
TARGET_DETECT_P99_US = 2000
# The delivery issue's targets: publish -> webhook p99 under 20 ms on
# loopback, at least 2,000 webhook deliveries/s to one fast receiver.
TARGET_DELIVERY_P99_US = 20_000
TARGET_DELIVERIES_PER_S = 2000
PG_CONFIGS = [("pg1", "pulsegate (1 shard)"), ("pg2", "pulsegate (2 shards)")]

QUERIES = [
    ("day_1000", "24 h of a 1 Hz series (86,400 points) -> 1,000 points"),
    ("week_1000", "7 days of a 1 Hz series (604,800 points) -> 1,000 points"),
    ("last_week_of_8d_1000", "last 7 days of an 8-day 1 Hz series -> 1,000 points"),
    ("hour_1000", "last 1 h of the 24 h series -> 1,000 points"),
    ("latest_4", "latest() of a device with 4 metrics"),
]


def median(rows, key):
    vals = [r[key] for r in rows if key in r and r[key] is not None]
    return statistics.median(vals) if vals else None


def worst(rows, key):
    vals = [r[key] for r in rows if key in r]
    return max(vals) if vals else None


def lowest(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return min(vals) if vals else None


def nested_median(rows, *path):
    """Median of a value nested in each row (query bench JSON)."""
    vals = []
    for r in rows:
        for p in path:
            r = r.get(p) if isinstance(r, dict) else None
        if isinstance(r, (int, float)):
            vals.append(r)
    return statistics.median(vals) if vals else None


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
    elif kind == "telemetry":
        pts = median(rows, "points_per_s")
        text = (f"**{k(pts)} points/s** ({k(median(rows, 'acked_per_s'))} readings/s acked; "
                f"delivered/acked {pct(median(rows, 'delivered_of_acked'))}; "
                f"acked-not-delivered {worst(rows, 'acked_not_delivered')})")
        primary = pts
    elif kind == "bridge_forward":
        fwd = median(rows, "forwarded_per_s")
        text = (f"**{k(fwd)}/s** (acked {k(median(rows, 'acked_per_s'))}/s; arrived/acked "
                f"{pct(median(rows, 'delivered_of_acked'))}; lag after stop {median(rows, 'lag_after_stop_s'):.1f} s; "
                f"reordered {worst(rows, 'reordered')}; duplicates {worst(rows, 'duplicates')})")
        primary = fwd
    elif kind == "bridge_drain":
        rate, total = median(rows, "drain_per_s"), median(rows, "drain_from_start_per_s")
        worst_run = max(rows, key=lambda r: (r.get("lost", 0), r.get("reordered", 0)))
        arrived = (f"all {worst_run.get('drained')} arrived" if not worst_run.get("lost")
                   else f"**{worst_run.get('drained')} of {worst_run.get('count')} arrived**")
        order = "in order" if not worst_run.get("reordered") else f"**{worst_run.get('reordered')} reordered**"
        text = (f"**{k(rate)}/s** ({arrived}, {order}, {worst(rows, 'duplicates')} duplicates; first after "
                f"{median(rows, 'first_after_start_s'):.1f} s, last after {median(rows, 'last_after_start_s'):.1f} s: "
                f"{k(total)}/s from upstream start)")
        primary = (rate, total)
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
    if kind == "bridge_drain":
        if not mosq[0] or not mosq[1]:
            return "n/a"
        best = max(pgs, key=lambda p: p[0] or 0)
        return (f"drain {times(best[0] / mosq[0])}, from upstream start {times(max(p[1] or 0 for p in pgs) / mosq[1])} "
                "(higher is better)")
    best = max(pgs)
    return f"{times(best / mosq)} (higher is better)" if mosq > 0 else "n/a"


def rows_of(data, sid, bid):
    return [d for d in data if d["scenario_id"] == sid and d["broker"] == bid and "error" not in d]


def telemetry_section(data):
    """Details of the telemetry rows: one line per (row, broker)."""
    out = []
    table = []
    best_commit = None
    mosq = rows_of(data, "telemetry_commit", "mosquitto") or rows_of(data, "telemetry_relaxed", "mosquitto")
    mosq_acked = median(mosq, "acked_per_s")
    for sid, _, kind in SCENARIOS:
        if kind != "telemetry":
            continue
        for bid, name in BROKERS:
            rows = rows_of(data, sid, bid)
            if not rows:
                continue
            mode = "-" if bid == "mosquitto" else sid.split("_", 1)[1]
            pts = median(rows, "points_per_s")
            if sid == "telemetry_commit" and bid != "mosquitto" and pts is not None:
                best_commit = pts if best_commit is None else max(best_commit, pts)
            bpp, bpp_run = median(rows, "bytes_per_point"), median(rows, "bytes_per_point_during_run")
            wb = "n/a" if bpp is None else f"{bpp:.1f} ({bpp_run:.1f} during the run)"
            stored = lowest(rows, "stored_minus_acked")
            if bid == "mosquitto":
                st = "n/a (`persistence false`)"
            elif stored is None:
                st = "not counted"
            else:
                worst_run = min(rows, key=lambda r: r.get("stored_minus_acked", 0))
                verdict = "ok" if stored >= 0 else "**LOST POINTS**"
                st = (f"{worst_run.get('stored_points')} / {worst_run.get('points_acked')} "
                      f"({stored:+d}, {verdict}; {worst_run.get('stored_series')} series")
                size = median(rows, "data_dir_bytes")
                st += ")" if size is None else f"; data dir {size / 2**20:.0f} MiB)"
            acked = median(rows, "acked_per_s")
            vs = "" if bid == "mosquitto" or not mosq_acked or acked is None else f" ({times(acked / mosq_acked)})"
            table.append(
                f"| {sid} | {name} | {mode} | {k(acked)}{vs} | **{k(pts)}** | "
                f"{median(rows, 'received'):.0f} / {median(rows, 'acked'):.0f} "
                f"({pct(median(rows, 'delivered_of_acked'))}; not delivered {worst(rows, 'acked_not_delivered')}) | "
                f"{wb} | {st} |")
    if not table:
        return out
    out.append("")
    out.append("## Telemetry and storage")
    out.append("")
    any_row = next(d for d in data if d.get("scenario") == "telemetry")
    out.append(f"{any_row['devices']:,} device connections publish QoS 1 JSON readings of 4 metrics (explicit "
               f"increasing \"ts\") on `d/dev{{i}}/telemetry` for {any_row['duration_s']:.0f} s, at most "
               f"{any_row['window']} unacknowledged each; one subscriber on `d/+/telemetry` (QoS 1). "
               "Readings/s = PUBACKs received while publishing / publishing time (the drain's acks are not in the "
               "rate); points = 4 x readings. Delivered / acked = readings the subscriber got / readings acked "
               "(drain included). Bytes/point = the broker's `write_bytes` (/proc/PID/io) from the start of "
               "publishing until it exited after SIGTERM (final checkpoint included) / points acked; \"during the "
               "run\" stops when the subscriber is drained. Stored = points counted in the data dir after the "
               "daemon stopped (pulsegate-storecheck) / points acked: must not be below.")
    out.append("")
    out.append("| row | broker | durability | readings/s acked (vs mosquitto) | points/s acked | "
               "delivered / acked | bytes written / point | stored / acked points |")
    out.append("|---|---|---|---|---|---|---|---|")
    out.extend(table)
    out.append("")
    if best_commit is not None:
        met = "met" if best_commit >= TARGET_POINTS_PER_S else "**not met**"
        line = (f"Target of issue 3, >= {TARGET_POINTS_PER_S:,} points/s with durability commit: "
                f"best {best_commit:,.0f} points/s, {met}")
        if mosq_acked:
            r = best_commit / 4 / mosq_acked
            line += (f"; durable QoS 1 at {times(r)} Mosquitto's non-durable QoS 1 acked rate "
                     f"({'met' if r >= 1 else '**not met**'}).")
        out.append(line)
    return out


def query_section(data):
    rows = rows_of(data, "query", "store")
    fails = [d["error"] for d in data if d["scenario_id"] == "query" and "error" in d]
    if not rows and not fails:
        return []
    out = ["", "## Telemetry store alone (pulsegate-querybench, no broker)", ""]
    if not rows:
        out.append("FAILED: " + "; ".join(sorted(set(fails))))
        return out
    r0 = rows[0]
    out.append(f"A fresh store with the default geometry ({r0.get('points_per_series'):,} raw points per series, "
               f"{r0.get('minute_slots'):,} minute rows, {r0.get('hour_slots'):,} hour rows), filled through "
               "`append()` with sync commits; medians over the runs. Journaled: right after the fill, every point "
               "still in the journal; checkpointed: after stop() and reopen.")
    out.append("")
    out.append("| fill | points | points/s until flush() | points/s including the final checkpoint |")
    out.append("|---|---|---|---|")
    for key, label in (("fill_fleet", f"fleet: {r0.get('fleet_devices')} devices x 4 metrics x "
                                      f"{r0.get('fleet_readings')} readings, interleaved"),
                       ("fill_charts", "charts: series of 24 h, 7 days and 8 days at 1 Hz, one after the other")):
        out.append(f"| {label} | {nested_median(rows, key, 'points'):,.0f} | "
                   f"**{k(nested_median(rows, key, 'points_per_s'))}** | "
                   f"{k(nested_median(rows, key, 'points_per_s_with_checkpoint'))} |")
    out.append("")
    out.append("| query | served from | points | checkpointed, median us | journaled, median us |")
    out.append("|---|---|---|---|---|")
    for key, label in QUERIES:
        src = r0.get("checkpointed", {}).get(key, {}).get("source", "?")
        src_j = r0.get("journaled", {}).get(key, {}).get("source", "?")
        if src_j != src:
            src += f" (journaled: {src_j})"
        npts = nested_median(rows, "checkpointed", key, "points")
        cp, jn = nested_median(rows, "checkpointed", key, "median_us"), nested_median(rows, "journaled", key, "median_us")
        out.append(f"| {label} | {src} | {npts:.0f} | **{cp:.1f}** | {jn:.1f} |")
    return out


def us(x):
    return "?" if x is None else f"{x:.0f}"


def rules_section(data):
    """Rules engine: ingest with and without rules, detection latency, and
    the evaluator alone."""
    out = []
    thr = [d for d in data if d["scenario_id"] == "rules_throughput"]
    lat = [d for d in data if d["scenario_id"] == "rules_latency"]
    ev = [d for d in data if d["scenario_id"] == "heartbeat_tick"]
    if not (thr or lat or ev):
        return out
    out += ["", "## Rules engine", ""]
    first = next((d for d in thr + lat if "devices" in d), None)
    if first:
        out.append(f"pulsegate with `durability = \"relaxed\"` (a PUBACK does not wait for the disk: these rows measure "
                   "the engine, not the disk), `[auth] allow_anonymous = true`; anonymous clients live in tenant "
                   "`default`, created with a tenant_admin through the operator API after `pulsegate init`, and the "
                   "rules are POSTed to `/api/v1/rules` before the load starts. "
                   f"{first['devices']:,} devices over {first.get('connections', '?'):,} connections; each reading "
                   f"carries {first.get('metrics_per_reading', '?')} of 100 metrics (values 100-1000) and meets 10 "
                   "threshold rules per metric, none of which fires. Mosquitto has no rules engine: its column is "
                   "plain ingest of the same load.")
        out.append("")

    def failures(sid, bid):
        return [d["error"] for d in data if d["scenario_id"] == sid and d["broker"] == bid and "error" in d]

    if thr:
        out.append("**Ingest throughput** (`rules_throughput`): QoS 1 readings at full speed, at most "
                   f"{next((d['window'] for d in thr if 'window' in d), '?')} unacknowledged per connection, no "
                   "subscriber. Readings/s accepted: pulsegate's `pulsegate_ingest_readings_total` read from /metrics "
                   "when publishing starts and stops, / publishing time (an MQTT 3.1.1 PUBACK is sent even for a "
                   "reading refused as invalid or because the storage writer is behind, so PUBACKs would overstate "
                   "it; refusals are flagged); Mosquitto: PUBACKs received while publishing / publishing time. "
                   "Evaluations/s from `pulsegate_rules_evaluations_total`; *evaluated* = "
                   "`pulsegate_rules_messages_total` / `pulsegate_ingest_readings_total` (a reading the engine's "
                   "queue refused is stored but not evaluated: `pulsegate_rules_dropped_total`).")
        out.append("")
        out.append("| broker | readings/s accepted, no rules | readings/s accepted, 1,000 rules | with / without rules | rule evaluations/s "
                   "| evaluations / reading | evaluated (dropped) | broker CPU, no rules / rules |")
        out.append("|---|---|---|---|---|---|---|---|")
        mrows = rows_of(data, "rules_throughput", "mosquitto")
        mosq = median(mrows, "acked_per_s")
        if mrows or failures("rules_throughput", "mosquitto"):
            cpu = median(mrows, "broker_cpu_pct")
            cell_m = f"**{k(mosq)}**" if mrows else "FAILED: " + "; ".join(failures("rules_throughput", "mosquitto"))
            out.append(f"| mosquitto (no rules engine) | {cell_m} | n/a | n/a | n/a | n/a | n/a | "
                       f"{'n/a' if cpu is None else f'{cpu:.0f}%'} / n/a |")
        verdicts = []
        for bid, name in PG_CONFIGS:
            base, ruled = rows_of(data, "rules_throughput", bid), rows_of(data, "rules_throughput", bid + "_rules")
            fb, fr = failures("rules_throughput", bid), failures("rules_throughput", bid + "_rules")
            if not (base or ruled or fb or fr):
                continue
            rate = lambda rows: median(rows, "accepted_per_s") if any("accepted_per_s" in x for x in rows) \
                else median(rows, "acked_per_s")
            b, r = rate(base), rate(ruled)
            cb = "FAILED: " + "; ".join(sorted(set(fb))) if not base and fb else f"**{k(b)}**"
            cr = "FAILED: " + "; ".join(sorted(set(fr))) if not ruled and fr else f"**{k(r)}**"
            if r is not None and mosq:
                cr += f" ({times(r / mosq)} mosquitto)"
            ratio_txt = "n/a"
            if b and r is not None:
                ratio_txt = f"**{r / b:.2f}**"
                verdicts.append((r / b, name))
            evals = median(ruled, "evaluations_per_s")
            readings, evaluated = median(ruled, "pg_readings"), median(ruled, "pg_rules_messages")
            per = median(ruled, "pg_rules_evaluations")
            per = per / readings if per is not None and readings else None
            dropped = worst(ruled, "pg_rules_dropped")
            share = "?" if not readings or evaluated is None else pct(evaluated / readings)
            drop_txt = f"{share} ({dropped:.0f})" if dropped is not None else share
            if dropped:
                drop_txt = f"**{drop_txt}**"
            for label, key in (("invalid", "pg_rejected"), ("refused, storage behind", "pg_refused")):
                n = worst(base + ruled, key)
                if n:
                    drop_txt += f"; **{n:.0f} {label}**"
            cpu_b, cpu_r = median(base, "broker_cpu_pct"), median(ruled, "broker_cpu_pct")
            cpus = " / ".join("n/a" if c is None else f"{c:.0f}%" for c in (cpu_b, cpu_r))
            out.append(f"| {name} | {cb} | {cr} | {ratio_txt} | {k(evals)} | "
                       f"{'?' if per is None else f'{per:.1f}'} | {drop_txt} | {cpus} |")
        out.append("")
        if verdicts:
            best = max(verdicts)
            met = "met" if best[0] >= TARGET_RULES_RATIO else "**not met**"
            out.append(f"Target of issue 5, throughput with 1,000 rules >= {TARGET_RULES_RATIO}x ingest without rules: "
                       + ", ".join(f"{n} {v:.2f}x" for v, n in verdicts) + f"; {met}.")
            out.append("")

    if lat:
        d0 = next((d for d in lat if "rate" in d), {})
        out.append(f"**Detection latency** (`rules_latency`): {d0.get('rate', 20000):,.0f} background readings/s (QoS 0, "
                   "paced, never breaching) plus a probe device publishing `{\"probe\": V}` every "
                   f"{d0.get('probe_interval_ms', 0):.0f} ms, alternately breaching (`probe > 999999`, V = 1000000 + "
                   "sequence) and clearing (V = 0). Detection = from just before the breaching PUBLISH is written to "
                   "the arrival of the alert.opened event (subscriber on `alerts/probe/#`, QoS 1) whose `value` is "
                   "that reading; plain = the same PUBLISH to a subscriber of the probe's telemetry topic, in the same "
                   "run; *alert after its reading* = arrival of the event - arrival of the reading itself at the same "
                   "process (the engine's share: hand-over to the engine thread, evaluation, the event back to a "
                   "shard). Samples after 1 s of warm-up; *missing* = breaches without their event (or message).")
        out.append("")
        out.append("| broker | detection p50 / p99 / max (us) | plain publish -> subscriber p50 / p99 / max (us) | "
                   "alert after its reading, p50 / p99 (us) | samples (missing) | background readings/s sent | "
                   "broker CPU |")
        out.append("|---|---|---|---|---|---|---|")
        best = None
        for bid, name in [("mosquitto", "mosquitto (no rules engine)")] + [(b + "_rules", n) for b, n in PG_CONFIGS]:
            rows, fails = rows_of(data, "rules_latency", bid), failures("rules_latency", bid)
            if not rows:
                if fails:
                    out.append(f"| {name} | FAILED: {'; '.join(sorted(set(fails)))} | | | | | |")
                continue
            plain = f"{us(median(rows, 'plain_p50_us'))} / {us(median(rows, 'plain_p99_us'))} / {us(median(rows, 'plain_max_us'))}"
            if any("detect_samples" in r for r in rows):
                p99 = median(rows, "detect_p99_us")
                det = f"**{us(median(rows, 'detect_p50_us'))} / {us(p99)}** / {us(median(rows, 'detect_max_us'))}"
                lag = f"{us(median(rows, 'lag_p50_us'))} / {us(median(rows, 'lag_p99_us'))}"
                samples = f"{median(rows, 'detect_samples'):.0f} ({worst(rows, 'detect_missing')})"
                if p99 is not None and (best is None or p99 < best[0]):
                    best = (p99, name)
                dropped = worst(rows, "pg_rules_dropped")
                if dropped:
                    samples += f"; {dropped:.0f} readings dropped by the engine"
            else:
                det = lag = "n/a"
                samples = f"{median(rows, 'plain_samples'):.0f} ({worst(rows, 'plain_missing')})"
            cpu = median(rows, "broker_cpu_pct")
            out.append(f"| {name} | {det} | {plain} | {lag} | {samples} | {k(median(rows, 'bg_sent_per_s'))} | "
                       f"{'n/a' if cpu is None else f'{cpu:.0f}%'} |")
        out.append("")
        if best:
            met = "met" if best[0] < TARGET_DETECT_P99_US else "**not met**"
            out.append(f"Target of issue 5, detection p99 < {TARGET_DETECT_P99_US / 1000:.0f} ms under this load: best "
                       f"{best[0]:.0f} us ({best[1]}), {met}.")
            out.append("")

    if ev:
        rows = [d for d in ev if "error" not in d]
        out.append("**The evaluator alone** (`heartbeat_tick`, pulsegate-rulesbench: no broker, no thread, synthetic "
                   "clock, one core)")
        out.append("")
        if not rows:
            out.append("FAILED: " + "; ".join(sorted({d["error"] for d in ev})))
            return out
        h = lambda key: nested_median(rows, "heartbeat", key)
        t = lambda key: nested_median(rows, "threshold", key)
        hb0, th0 = rows[0]["heartbeat"], rows[0]["threshold"]
        out.append(f"Heartbeat: {hb0['devices']:,} registered devices under one heartbeat rule (interval_s "
                   f"{hb0['interval_s']}, missed {hb0['missed']}); each device sends once per interval at a random "
                   f"time; every interval {100 * hb0['silent_fraction']:.0f}% of them go quiet for "
                   f"{hb0['silent_intervals']} intervals (NO_HEARTBEAT opens, then closes). The clock steps by "
                   f"{hb0['tick_ms']} ms (the engine's timer resolution): that step's messages, then one tick(); "
                   f"{hb0['measure_intervals']} intervals timed after {hb0['warmup_intervals']} of warm-up. "
                   f"Threshold: {th0['rules']:,} rules, {th0['devices']:,} devices, {th0['metrics_per_reading']} metrics "
                   "per reading, on_reading() in a loop.")
        out.append("")
        out.append("| figure | value |")
        out.append("|---|---|")
        out.append(f"| tick() with {hb0['devices']:,} devices, wall time mean / p50 / p99 / max | "
                   f"{h('tick_mean_ns') / 1000:.1f} / {h('tick_p50_ns') / 1000:.1f} / {h('tick_p99_ns') / 1000:.1f} / "
                   f"{h('tick_max_ns') / 1000:.1f} us |")
        out.append(f"| tick(), thread CPU time (not inflated by preemption) mean / p99 / max | "
                   f"**{h('tick_cpu_mean_ns') / 1000:.1f} / {h('tick_cpu_p99_ns') / 1000:.1f}** / "
                   f"{h('tick_cpu_max_ns') / 1000:.1f} us |")
        out.append(f"| timers fired per tick, mean (max); cost per fired timer | {h('fired_per_tick_mean'):.0f} "
                   f"({h('fired_per_tick_max'):.0f}); {h('tick_ns_per_fired'):.0f} ns |")
        out.append(f"| on_message() (liveness), mean | **{h('on_message_mean_ns'):.0f} ns** "
                   f"({k(h('messages_per_s_simulated'))} messages per simulated second) |")
        out.append(f"| flush once a second (take_liveness + take_dirty), mean / max | {h('flush_mean_ns') / 1000:.0f} / "
                   f"{h('flush_max_ns') / 1000:.0f} us ({k(h('flushed_devices_per_s'))} devices) |")
        out.append(f"| NO_HEARTBEAT opened / closed per second; open at the end; armed timers | "
                   f"{h('alerts_opened_per_s'):.0f} / {h('alerts_closed_per_s'):.0f}; {h('open_alerts'):.0f}; "
                   f"{h('timers'):,.0f} |")
        out.append(f"| engine thread busy with heartbeats (messages + ticks + flushes per simulated second) | "
                   f"{h('engine_busy_pct'):.2f}% of one core |")
        out.append(f"| evaluator memory (RSS growth): after set_devices + set_rules; at the end | "
                   f"{h('rss_setup_kb') / 1024:.0f} MiB; {h('rss_kb') / 1024:.0f} MiB "
                   f"({h('rss_kb') * 1024 / hb0['devices']:.0f} B per device) |")
        out.append(f"| threshold: readings/s ({t('evaluations_per_reading'):.0f} evaluations each) | "
                   f"**{k(t('readings_per_s'))}** ({t('ns_per_reading'):.0f} ns per reading) |")
        out.append(f"| threshold: rule evaluations/s on one core | **{k(t('evaluations_per_s'))}** "
                   f"({t('ns_per_evaluation'):.1f} ns each) |")
    return out


def bridge_section(data):
    """The bridges: forward while connected, drain after an outage."""
    fwd = [d for d in data if d["scenario_id"] == "bridge_forward"]
    drn = [d for d in data if d["scenario_id"] == "bridge_drain"]
    if not (fwd or drn):
        return []
    first = next((d for d in fwd + drn if "bridge_inflight" in d), {})
    out = ["", "## Bridge (`bridge_forward`, `bridge_drain`)", ""]
    out.append(
        "Each broker under test bridges to an upstream (\"central\") Mosquitto of its own, fresh per run on a free "
        "port (`persistence true`, `max_queued_messages 0`, `max_inflight_messages` as the bridges). Devices publish "
        "QoS 1 telemetry readings on `d/devN/telemetry` into the broker under test; its bridge forwards them at "
        "QoS 1 to `site/t/default/d/devN/telemetry` upstream, where one subscriber (QoS 1, filter "
        "`site/t/+/d/+/telemetry`) counts what arrived. Mosquitto's bridge: `topic d/+/telemetry out 1 \"\" "
        "site/t/default/`, `cleansession false` (so `local_cleansession` false: its local session keeps queueing "
        "for the bridge while the uplink is down, up to `max_queued_messages` 1000000, in memory), "
        "`restart_timeout 1 2` (it retries every 2 to 4 s), MQTT 3.1.1; pulsegate's: `[[bridge]] forward = [{ filter = \"t/+/d/+/telemetry\", "
        "prefix = \"site/\", qos = 1 }]`, `reconnect_max_s = 1`, `clean_start` false, MQTT 3.1.1, its LMDB "
        f"store-and-forward queue, `[storage] durability = \"{first.get('bridge_durability', '?')}\"`. Both keep "
        f"{first.get('bridge_inflight', '?')} messages in flight to the upstream. **Forward**: "
        "forwarded/s = readings arrived upstream / (first publish -> last arrival); acked/s = PUBACKs the devices "
        "got while publishing / publishing time (pulsegate acknowledges once a reading is stored and queued, so "
        "its queue can grow while publishing); *lag after stop* = last arrival - end of publishing. **Drain**: the "
        "subscriber's persistent session is made and the bridge seen up (a warm-up reading), the upstream is "
        "stopped (SIGTERM), the readings are published and all acknowledged (the fill), the counting subscriber "
        "is started, then the upstream; the subscriber connects within a millisecond of the upstream listening "
        "(\"upstream start\") and resumes its session. First / last = the first and last reading's arrival after "
        "upstream start (the first includes the bridge's reconnect after its retry delay); drain/s = readings / (last - first).")
    out.append("")
    if fwd:
        out.append("| forward | forwarded/s upstream | acked/s (ingest) | forwarded while publishing /s | lag after stop "
                   "| arrived / acked | reordered, duplicates | CPU: broker / upstream / load generator |")
        out.append("|---|---|---|---|---|---|---|---|")
        for bid, name in BROKERS:
            rows = rows_of(data, "bridge_forward", bid)
            if not rows:
                continue
            cpu = " / ".join("?" if median(rows, key) is None else f"{median(rows, key):.0f}%"
                             for key in ("broker_cpu_pct", "upstream_cpu_pct", "loadgen_cpu_pct"))
            out.append(f"| {name} | **{k(median(rows, 'forwarded_per_s'))}** | {k(median(rows, 'acked_per_s'))} | "
                       f"{k(median(rows, 'forwarded_while_publishing_per_s'))} | "
                       f"{median(rows, 'lag_after_stop_s'):.1f} s | {median(rows, 'forwarded'):.0f} / "
                       f"{median(rows, 'acked'):.0f} (not arrived {worst(rows, 'acked_not_delivered')}) | "
                       f"{worst(rows, 'reordered')}, {worst(rows, 'duplicates')} | {cpu} |")
        out.append("")
    if drn:
        out.append("| drain | readings | fill: acked/s, broker CPU | first / last arrival after upstream start | "
                   "drain/s (first -> last) | /s from upstream start | arrived, order, duplicates | "
                   "pulsegate queue before / after | CPU, first -> last arrival: broker / upstream |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for bid, name in BROKERS:
            rows = rows_of(data, "bridge_drain", bid)
            if not rows:
                continue
            worst_run = max(rows, key=lambda r: (r.get("lost", 0), r.get("reordered", 0)))
            arrived = (f"{worst_run.get('drained')} / {worst_run.get('count')}"
                       + ("" if not worst_run.get("lost") else " **LOST**"))
            order = "in order" if not worst_run.get("reordered") else f"**{worst_run.get('reordered')} reordered**"
            q0, q1 = median(rows, "pg_queued_before"), median(rows, "pg_queued_after")
            queue = "n/a" if q0 is None else f"{q0:.0f} / {'?' if q1 is None else f'{q1:.0f}'}"
            cpu = " / ".join("?" if median(rows, key) is None else f"{median(rows, key):.0f}%"
                             for key in ("broker_cpu_pct_drain", "upstream_cpu_pct_drain"))
            fill_cpu = median(rows, "fill_broker_cpu_pct")
            out.append(f"| {name} | {median(rows, 'count'):,.0f} | {k(median(rows, 'fill_per_s'))}, "
                       f"{'?' if fill_cpu is None else f'{fill_cpu:.0f}%'} | "
                       f"{median(rows, 'first_after_start_s'):.2f} / {median(rows, 'last_after_start_s'):.2f} s | "
                       f"**{k(median(rows, 'drain_per_s'))}** | {k(median(rows, 'drain_from_start_per_s'))} | "
                       f"{arrived}, {order}, {worst(rows, 'duplicates')} | {queue} | {cpu} |")
        out.append("")
    return out


def delivery_section(data):
    """Alert delivery end to end: publish -> webhook latency and deliveries/s."""
    rows_all = [d for d in data if d["scenario_id"] == "delivery"]
    if not rows_all:
        return []
    out = ["", "## Alert delivery (`delivery`)", ""]
    first = next((d for d in rows_all if "devices" in d), None)
    if first:
        out.append(
            "pulsegate with `durability = \"relaxed\"`, `[delivery] allow_private_targets = [\"127.0.0.0/8\"]`, "
            f"`workers = {first.get('delivery_workers', '?')}` (other [delivery] keys default: 8 sends in flight per "
            "integration); one rule `probe > 999999`, one webhook integration to pulsegate-hookbench's receiver on "
            "127.0.0.1 (answers 204 at once) and one route of `alert.opened` only. **Latency**: the probe device "
            f"publishes a breach (QoS 0) every {2 * first['probe_interval_ms']:.0f} ms, a clear in between, for "
            f"{first['warmup_s']:.0f} + {first['duration_s']:.0f} s (the warm-up's breaches do not count): breaching "
            "PUBLISH written -> the receiver has read the webhook request carrying that value. **Throughput**: then "
            f"{first['devices']:,} devices (known to pulsegate, their alerts closed) each publish one breach (QoS 1, "
            "one connection, all written at once): deliveries/s = distinct alerts delivered / (last request read - "
            "first PUBLISH written). Mosquitto has no alert delivery.")
        out.append("")
    out.append("| broker | publish -> webhook p50 / p99 / max (ms) | breaches (missing) | deliveries/s | "
               "delivered in the burst; first / last request (ms after the first PUBLISH) | "
               "broker CPU: latency / burst | retries, dead |")
    out.append("|---|---|---|---|---|---|---|")
    out.append("| mosquitto | n/a (no alert delivery) | | | | | |")
    best_p99 = best_rate = None
    for bid, name in PG_CONFIGS:
        rows = rows_of(data, "delivery", bid)
        fails = [d["error"] for d in rows_all if d["broker"] == bid and "error" in d]
        if not rows:
            if fails:
                out.append(f"| {name} | FAILED: {'; '.join(sorted(set(fails)))} | | | | | |")
            continue
        ms = lambda key: "?" if median(rows, key) is None else f"{median(rows, key) / 1000:.1f}"
        p99, rate = median(rows, "latency_p99_us"), median(rows, "deliveries_per_s")
        if p99 is not None and (best_p99 is None or p99 < best_p99[0]):
            best_p99 = (p99, name)
        if rate is not None and (best_rate is None or rate > best_rate[0]):
            best_rate = (rate, name)
        worst_run = min(rows, key=lambda r: r.get("burst_delivered", 0))
        note = f" ({len(fails)} failed run(s))" if fails else ""
        out.append(f"| {name}{note} | **{ms('latency_p50_us')} / {ms('latency_p99_us')}** / {ms('latency_max_us')} | "
                   f"{median(rows, 'latency_counted'):.0f} ({worst(rows, 'latency_missing')}) | **{k(rate)}/s** | "
                   f"{worst_run.get('burst_delivered')} / {worst_run.get('devices')}; "
                   f"{median(rows, 'burst_first_ms'):.0f} / {median(rows, 'burst_last_ms'):.0f} | "
                   f"{median(rows, 'broker_cpu_pct_latency'):.0f}% / {median(rows, 'broker_cpu_pct_burst'):.0f}% | "
                   f"{worst(rows, 'pg_retries'):.0f}, {worst(rows, 'pg_dead'):.0f} |")
    out.append("")
    if best_p99 or best_rate:
        parts = []
        if best_p99:
            met = "met" if best_p99[0] < TARGET_DELIVERY_P99_US else "**not met**"
            parts.append(f"publish -> webhook p99 < {TARGET_DELIVERY_P99_US / 1000:.0f} ms: best "
                         f"{best_p99[0] / 1000:.1f} ms ({best_p99[1]}), {met}")
        if best_rate:
            met = "met" if best_rate[0] >= TARGET_DELIVERIES_PER_S else "**not met**"
            parts.append(f">= {TARGET_DELIVERIES_PER_S:,} deliveries/s: best {best_rate[0]:,.0f}/s ({best_rate[1]}), {met}")
        out.append("Targets of the delivery issue: " + "; ".join(parts) + ".")
        out.append("")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--mode", default="")
    ap.add_argument("--load", default="")
    ap.add_argument("--nice", default="0")
    ap.add_argument("--pin", default="0")
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
    if a.pin == "1":
        lines.append("- `--pin`: the brokers run on CPU 0 only, the load generator (one thread, MQTT 3.1.1) on CPU 1 "
                     "only; every broker is started fresh for every run")
    else:
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
    if any(sid in seen for sid, _, _ in SCENARIOS):
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
            rows = rows_of(data, sid, bid)
            fails = [d["error"] for d in data if d["scenario_id"] == sid and d["broker"] == bid and "error" in d]
            t, p = cell(kind, rows, fails)
            if not rows and not fails and sid == "telemetry_relaxed" and bid == "mosquitto":
                # Mosquitto has no durability setting: it ran once, in the commit row.
                base = rows_of(data, "telemetry_commit", bid)
                if base:
                    t, p = cell(kind, base, [])
                    t = "as in the commit row: " + t
            texts.append(t)
            prims[bid] = p
            bc, lc = median(rows, "broker_cpu_pct"), median(rows, "loadgen_cpu_pct")
            cpus.append("n/a" if bc is None else f"{bc:.0f}% / {lc:.0f}%")
        if kind in ("telemetry", "bridge_forward", "bridge_drain"):
            first = next((d for d in data if d["scenario_id"] == sid and "devices" in d), {})
            label = label.format(devices=first.get("devices", "?"), window=first.get("window", "?"),
                                 count=first.get("count", 0))
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
    lines.extend(telemetry_section(data))
    lines.extend(query_section(data))
    lines.extend(rules_section(data))
    lines.extend(delivery_section(data))
    lines.extend(bridge_section(data))
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
