#!/usr/bin/env bash
# pulsegate vs Mosquitto on this machine, in one command:
#
#   bash test/bench/run.sh [--quick] [--only-mosquitto] [--runs N] [--scenarios LIST]
#                          [--nice N] [--pin]
#
# Builds the load generator (and the daemon, if it builds) in ./build, then
# for every scenario runs each broker -- Mosquitto, pulsegate with 1 shard,
# pulsegate with 2 shards -- started fresh on its own free port, N times
# (3; --quick: 1 run with shorter durations), and prints a markdown table of
# the medians, also written to test/bench/results.md. See README.md.
# --nice N runs the brokers and the load generator at that nice level (e.g.
# -10, needs root) so that other work on the machine disturbs them less.
# --pin runs the brokers on CPU 0 and the load generator on CPU 1 (taskset;
# needs 2 CPUs or more), so that the load generator never takes the
# broker's core: latency then measures the broker, not the sharing.
# Scenario `telemetry` stands for telemetry_commit,telemetry_relaxed, and
# `rules` for rules_throughput,rules_latency,heartbeat_tick. Scenario
# `delivery` (pulsegate only) measures alert delivery to a webhook receiver.
# Scenario `bridge` stands for bridge_forward,bridge_drain: each broker
# bridges to an upstream Mosquitto of its own (README.md, "Bridge").
#
# Environment:
#   BUILD_DIR     build directory (default ./build; configured if missing)
#   BUILD_JOBS    ninja -j for what it builds (default 2)
#   LOADGEN       use this load generator binary instead of building one
#   PULSEGATE     use this pulsegate binary instead of <build>/daemon/pulsegate
#   STORECHECK    use this pulsegate-storecheck (telemetry: stored points)
#   QUERYBENCH    use this pulsegate-querybench (scenario query)
#   RULESBENCH    use this pulsegate-rulesbench (scenario heartbeat_tick)
#   HOOKBENCH     use this pulsegate-hookbench (scenario delivery)
#   HOOK_WORKERS  [delivery] workers of pulsegate in scenario delivery (default 4)
#   HOOK_DEVICES  devices breaching at once in scenario delivery (default 5000)
#   BRIDGE_COUNT  readings queued during the outage in bridge_drain (default 100000)
#   BRIDGE_INFLIGHT  the bridges' in-flight window (default 1000: Mosquitto's
#                 max_inflight_messages, pulsegate's [[bridge]] max_inflight)
#   BRIDGE_DURABILITY  pulsegate's [storage] durability in the bridge rows
#                 (default commit, the daemon's default)
#   MOSQUITTO     mosquitto binary (default: mosquitto on PATH or /usr/sbin)
#   PG_EXTRA_TOML extra TOML appended to pulsegate's config
#   BENCH_OUT     where results.md goes (default test/bench/results.md)
#   BENCH_KEEP_DATA=1  keep pulsegate's data dirs (deleted after each run)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$root/build}
out_md=${BENCH_OUT:-$here/results.md}

quick=0
pin=0
nice_level=""
only_mosquitto=0
runs=""
scenarios="fanin_p1,fanin_p8,fanin_p64,fanin_qos1,fanout,latency,idle,telemetry_commit,telemetry_relaxed,query"
scenarios+=",rules_throughput,rules_latency,heartbeat_tick,delivery,bridge_forward,bridge_drain"
jobs=${BUILD_JOBS:-2}
usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'
    echo "scenarios: $scenarios"
}
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 ;;
        --only-mosquitto) only_mosquitto=1 ;;
        --nice) nice_level=$2; shift ;;
        --pin) pin=1 ;;
        --runs) runs=$2; shift ;;
        --scenarios) scenarios=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument: $1" >&2; usage >&2; exit 1 ;;
    esac
    shift
done
if [[ -z "$runs" ]]; then
    if [[ $quick == 1 ]]; then runs=1; else runs=3; fi
fi
if [[ $quick == 1 ]]; then
    dur=2; lat_dur=2; lat_warm=1; tel_dur=5; rules_dur=5; rules_lat_dur=5; hb_intervals=3; th_seconds=1; hook_dur=5
else
    dur=5; lat_dur=5; lat_warm=1; tel_dur=10; rules_dur=10; rules_lat_dur=15; hb_intervals=6; th_seconds=3; hook_dur=15
fi
# Telemetry: 1,000 devices, each with at most this many readings
# unacknowledged (the default in-flight limit of Mosquitto's clients is 20).
# Longer than the other scenarios: the store checkpoints every 10 s or 1M
# points, and a run should contain one.
tel_devices=1000
tel_window=16
# Rules (README.md, "Rules engine"): 10,000 devices over 1,000 connections,
# readings of 4 of 100 metrics; 1,000 threshold rules (10 per metric), so a
# reading meets 40 rules. Latency: 20,000 background readings/s and a probe
# reading every 25 ms (a breach every 50 ms).
rules_devices=10000
rules_conns=1000
rules_window=16
rules_metrics=100
rules_per_metric=10
rules_mpr=4
rules_bg_rate=20000
rules_probe_ms=25
# Delivery (README.md, "Alert delivery"): a probe reading every 25 ms (a
# breach every 50 ms) for the latency, then 5,000 devices breaching at once
# for deliveries/s; pulsegate's [delivery] workers.
hook_probe_ms=25
hook_devices=${HOOK_DEVICES:-5000}
hook_workers=${HOOK_WORKERS:-4}
# Bridge (README.md, "Bridge"): forward = 100 devices, QoS 1, window 16, for
# the scenario's duration; drain = BRIDGE_COUNT readings from 10 devices
# queued while the upstream is down. Both bridges keep BRIDGE_INFLIGHT
# messages in flight and retry a lost uplink after a second or two.
bridge_fwd_devices=100
bridge_window=16
bridge_fill_devices=10
bridge_count=${BRIDGE_COUNT:-100000}
bridge_inflight=${BRIDGE_INFLIGHT:-1000}
bridge_durability=${BRIDGE_DURABILITY:-commit}
expanded=""
IFS=',' read -r -a requested <<< "$scenarios"
for sc in "${requested[@]}"; do
    [[ $sc == telemetry ]] && sc=telemetry_commit,telemetry_relaxed
    [[ $sc == rules ]] && sc=rules_throughput,rules_latency,heartbeat_tick
    [[ $sc == bridge ]] && sc=bridge_forward,bridge_drain
    expanded+="${expanded:+,}$sc"
done
scenarios=$expanded
want() { [[ ",$scenarios," == *",$1,"* ]]; }
want_telemetry() { want telemetry_commit || want telemetry_relaxed; }

say() { echo "[bench] $*" >&2; }
die() { echo "[bench] ERROR: $*" >&2; exit 1; }

prio=(env)
if [[ -n "$nice_level" ]]; then
    nice -n "$nice_level" true 2>/dev/null && [[ $(nice -n "$nice_level" nice) == "$nice_level" ]] \
        || die "cannot run at nice level $nice_level (negative levels need root)"
    prio=(nice -n "$nice_level")
fi
broker_pin=() loadgen_pin=()
if [[ $pin == 1 ]]; then
    [[ $(nproc) -ge 2 ]] || die "--pin needs 2 CPUs or more"
    command -v taskset >/dev/null || die "--pin needs taskset (util-linux)"
    broker_pin=(taskset -c 0) loadgen_pin=(taskset -c 1)
fi
command -v python3 >/dev/null || die "python3 is needed (it comes with meson)"
mosquitto_bin=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
[[ -x "$mosquitto_bin" ]] || die "mosquitto not found (apt-get install mosquitto), or set MOSQUITTO="

# ---- build ----
loadgen=${LOADGEN:-}
pulsegate=${PULSEGATE:-}
if [[ -z "$loadgen" || ( $only_mosquitto == 0 && -z "$pulsegate" ) ]]; then
    if [[ ! -f "$build/build.ninja" ]]; then
        say "configuring $build"
        meson setup "$build" "$root" >&2 || die "meson setup failed"
    fi
fi
if [[ -z "$loadgen" ]]; then
    say "building the load generator"
    ninja -C "$build" -j"$jobs" test/bench/pulsegate-loadgen >&2 || die "building pulsegate-loadgen failed"
    loadgen=$build/test/bench/pulsegate-loadgen
fi
[[ -x "$loadgen" ]] || die "no load generator at $loadgen"

# The storage tools (they link only storage/, so they build even when the
# daemon does not).
storecheck=${STORECHECK:-}
querybench=${QUERYBENCH:-}
rulesbench=${RULESBENCH:-}
hookbench=${HOOKBENCH:-}
build_tool() { # VAR TARGET
    local target=$2
    say "building $target"
    if ninja -C "$build" -j"$jobs" "test/bench/$target" >&2; then
        printf -v "$1" '%s' "$build/test/bench/$target"
    else
        say "WARNING: $target did not build (see the ninja output above)"
    fi
}
if [[ $only_mosquitto == 0 ]]; then
    if want_telemetry && [[ -z "$storecheck" ]]; then build_tool storecheck pulsegate-storecheck; fi
    if want query && [[ -z "$querybench" ]]; then build_tool querybench pulsegate-querybench; fi
    if want heartbeat_tick && [[ -z "$rulesbench" ]]; then build_tool rulesbench pulsegate-rulesbench; fi
    if want delivery && [[ -z "$hookbench" ]]; then build_tool hookbench pulsegate-hookbench; fi
fi

pg_status=""
if [[ $only_mosquitto == 1 ]]; then
    pg_status="skipped (--only-mosquitto)"
elif [[ -n "$pulsegate" ]]; then
    [[ -x "$pulsegate" ]] || pg_status="PULSEGATE=$pulsegate is not executable"
else
    say "building the pulsegate daemon"
    if ninja -C "$build" -j"$jobs" daemon/pulsegate >&2; then
        pulsegate=$build/daemon/pulsegate
    else
        pg_status="daemon/pulsegate did not build (see the ninja output above)"
        say "WARNING: $pg_status; pulsegate columns will be empty"
    fi
fi

build_note=""
if [[ -f "$build/build.ninja" ]] && grep -q -- '-fsanitize' "$build/build.ninja"; then
    build_note="; WARNING: $build is a sanitizer build, its figures mean little"
    say "WARNING: $build is built with sanitizers; use a plain build (BUILD_DIR=...) for real figures"
fi

brokers="mosquitto"
[[ -z "$pg_status" ]] && brokers="mosquitto pg1 pg2"

# The brokers of one scenario. Mosquitto has no durability setting: it runs
# once for the two telemetry rows (in telemetry_commit), and report.py
# compares telemetry_relaxed with that figure. pgN_rules is pulsegate with N
# shards and the 1,000 rules (rules_setup.py); in rules_throughput pgN is
# the same daemon, tenant and user with no rules.
brokers_for() {
    case "$1" in
        rules_throughput)
            if [[ -z "$pg_status" ]]; then echo "mosquitto pg1 pg1_rules pg2 pg2_rules"; else echo mosquitto; fi ;;
        rules_latency)
            if [[ -z "$pg_status" ]]; then echo "mosquitto pg1_rules pg2_rules"; else echo mosquitto; fi ;;
        heartbeat_tick) if [[ $only_mosquitto == 0 ]]; then echo "evaluator"; fi ;;
        # Mosquitto delivers no alerts.
        delivery) if [[ -z "$pg_status" ]]; then echo "pg1 pg2"; fi ;;
        telemetry_relaxed)
            local b=""
            want telemetry_commit || b="mosquitto"
            [[ -z "$pg_status" ]] && b="$b pg1 pg2"
            echo "$b" ;;
        query) if [[ $only_mosquitto == 0 ]]; then echo "store"; fi ;;
        *) echo "$brokers" ;;
    esac
}

# Keys of pulsegate's [storage] section for one scenario.
pg_storage_toml() {
    case "$1" in
        telemetry_commit) echo 'durability = "commit"' ;;
        telemetry_relaxed) echo 'durability = "relaxed"' ;;
        # The rules rows measure the engine, not the disk.
        rules_*|delivery) echo 'durability = "relaxed"' ;;
        bridge_*) echo "durability = \"$bridge_durability\"" ;;
    esac
}

# pulsegate's [delivery] section: loopback receivers are refused unless
# allowed (the SSRF guard), and the hook receiver is on 127.0.0.1.
pg_delivery_toml() {
    [[ $1 == delivery ]] || return 0
    printf '[delivery]\nallow_private_targets = ["127.0.0.0/8"]\nworkers = %s\n' "$hook_workers"
}

# ---- brokers ----
work=$(mktemp -d /tmp/pulsegate-bench.XXXXXX)
results=$work/results.jsonl
: > "$results"
# The bridge rows' upstream Mosquitto, started as root, saves its sessions as
# user mosquitto: it must be able to reach its directory in here.
if want bridge_forward || want bridge_drain; then chmod 0711 "$work"; fi
say "work dir (configs, logs, raw results): $work"

# Every broker runs under exitio.py, which records the broker's disk writes
# over its whole life (shutdown included) in exit_io.json when it exits.
# broker_pid is the broker's own pid (signals, /proc), wrapper_pid the
# wrapper's (wait).
broker_pid=""
wrapper_pid=""
broker_log=""
broker_http_port=""
up_pid=""
up_port=""
up_dir=""
cleanup() {
    if [[ -n "$broker_pid" ]]; then kill "$broker_pid" 2>/dev/null || true; fi
    if [[ -n "$wrapper_pid" ]]; then kill "$wrapper_pid" 2>/dev/null || true; fi
    if [[ -n "$up_pid" ]]; then kill "$up_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- the bridge scenarios' upstream ("central") broker ----
# A Mosquitto of its own per run, on a free port, in DIR/upstream:
# persistence on, so that the counting subscriber's session (bridge_drain)
# survives the outage (SIGTERM saves it); no queue bound; as many QoS 1
# messages in flight per client as the brokers under test.

# upstream_conf DIR: writes DIR/upstream/mosquitto.conf, sets up_dir/up_port.
upstream_conf() {
    up_dir=$1/upstream
    up_port=$(free_port)
    mkdir -p "$up_dir"
    # Mosquitto started as root writes its database as user mosquitto.
    chmod 0777 "$up_dir"
    cat > "$up_dir/mosquitto.conf" <<EOF
listener $up_port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $up_dir/
max_queued_messages 0
max_inflight_messages $bridge_inflight
log_dest stderr
log_type error
log_type warning
log_type notice
EOF
}

# start_upstream: starts it (again), writes its pid to $up_dir/pid (which
# bridge_collect reads); does not wait for it to listen.
start_upstream() {
    (exec "${prio[@]}" "${broker_pin[@]}" "$mosquitto_bin" -c "$up_dir/mosquitto.conf") >> "$up_dir/mosquitto.log" 2>&1 &
    up_pid=$!
    echo "$up_pid" > "$up_dir/pid"
}

wait_upstream_listening() {
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$up_pid" 2>/dev/null || break
        if (exec 3<>"/dev/tcp/127.0.0.1/$up_port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    say "ERROR: the upstream Mosquitto did not start (port $up_port); its log:"
    sed 's/^/    | /' "$up_dir/mosquitto.log" >&2 || true
    return 1
}

# stop_upstream: SIGTERM (Mosquitto saves its sessions), waits for the exit.
stop_upstream() {
    [[ -n "$up_pid" ]] || return 0
    kill -TERM "$up_pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$up_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$up_pid" 2>/dev/null; then kill -KILL "$up_pid" 2>/dev/null || true; fi
    wait "$up_pid" 2>/dev/null || true
    up_pid=""
}

# The bridge of the broker under test to the upstream, forwarding the
# devices' telemetry to the same remote topics:
# site/t/default/d/<device>/telemetry. Mosquitto maps its local topic
# d/+/telemetry with the remote prefix "site/t/default/"; pulsegate mounts
# an anonymous device's d/X/telemetry at t/default/d/X/telemetry and
# forwards t/+/d/+/telemetry with the prefix "site/".
mosquitto_bridge_conf() {
    cat <<EOF
# The bridge (mosquitto.conf(5), "Configuring Bridges"). cleansession false:
# local_cleansession defaults to it, so the bridge's local session keeps
# queueing QoS 1 messages while the uplink is down, up to
# max_queued_messages (above: 1000000); max_inflight_messages (above)
# bounds its messages in flight to the remote too.
connection upstream
address 127.0.0.1:$up_port
remote_clientid bench-bridge
cleansession false
bridge_protocol_version mqttv311
notifications false
# Retry a lost uplink after 1 .. 2 s (jitter). A single value, meant as a
# constant delay, left 2.0.11 retrying 6, 8, 9 s apart (its default backoff
# is 5 .. 30 s); with "1 2" it retries every 2 .. 4 s (a whole-second clock).
restart_timeout 1 2
topic d/+/telemetry out 1 "" site/t/default/
EOF
}

pulsegate_bridge_toml() {
    cat <<EOF
# The bridge (adapters/bridge.hpp); clean_start false and MQTT 3.1.1 are
# its defaults, as in Mosquitto's bridge of these rows.
[[bridge]]
name = "upstream"
url = "mqtt://127.0.0.1:$up_port"
forward = [{ filter = "t/+/d/+/telemetry", prefix = "site/", qos = 1 }]
max_inflight = $bridge_inflight
reconnect_max_s = 1
EOF
}

# start_broker NAME TAG SCENARIO: starts a fresh broker, sets
# broker_pid/wrapper_pid/broker_port/broker_log.
start_broker() {
    local name=$1 tag=$2 scenario=$3 dir conf
    dir=$work/$tag
    mkdir -p "$dir"
    broker_port=$(free_port)
    broker_log=$dir/broker.log
    local wrap=(python3 "$here/exitio.py" "$dir/exit_io.json" --)
    if [[ $scenario == bridge_* ]]; then
        upstream_conf "$dir"
        start_upstream
        wait_upstream_listening || { stop_upstream; return 1; }
    fi
    case "$name" in
        mosquitto)
            conf=$dir/mosquitto.conf
            cat > "$conf" <<EOF
listener $broker_port 127.0.0.1
allow_anonymous true
persistence false
# Raised from 1000 / 20 so that queueing towards the subscriber is not what
# limits a run (QoS 0 messages beyond max_queued_messages are dropped).
max_queued_messages 1000000
max_inflight_messages 1000
log_dest stderr
log_type error
log_type warning
EOF
            [[ $scenario == bridge_* ]] && mosquitto_bridge_conf >> "$conf"
            (ulimit -n "$(ulimit -Hn)"; exec "${prio[@]}" "${broker_pin[@]}" "${wrap[@]}" "$mosquitto_bin" -c "$conf") > "$broker_log" 2>&1 &
            ;;
        pg1|pg2|pg1_rules|pg2_rules)
            conf=$dir/pulsegate.toml
            broker_http_port=$(free_port)
            if [[ $scenario == rules_* || $scenario == delivery ]]; then
                # A known admin password: rules_setup.py logs in with it.
                echo "bench-admin-password" > "$dir/admin.pw"
                "$pulsegate" init --data-dir "$dir/data" --admin-password-file "$dir/admin.pw" \
                    > "$dir/init.log" 2>&1 || { say "ERROR: pulsegate init failed:"; sed 's/^/    | /' "$dir/init.log" >&2; return 1; }
            else
                mkdir -p "$dir/data"
            fi
            cat > "$conf" <<EOF
[mqtt]
listen = "127.0.0.1:$broker_port"
shards = ${name:2:1}
# The same bounds as Mosquitto's config above.
max_queued_messages = 1000000
max_inflight = 1000
[http]
listen = "127.0.0.1:$broker_http_port"
[auth]
allow_anonymous = true
[storage]
data_dir = "$dir/data"
$(pg_storage_toml "$scenario")
[log]
level = "warn"
$(pg_delivery_toml "$scenario")
$([[ $scenario == bridge_* ]] && pulsegate_bridge_toml)
${PG_EXTRA_TOML:-}
EOF
            (ulimit -n "$(ulimit -Hn)"; exec "${prio[@]}" "${broker_pin[@]}" "${wrap[@]}" "$pulsegate" serve --config "$conf") > "$broker_log" 2>&1 &
            ;;
    esac
    wrapper_pid=$!
    broker_pid=""
    local i
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$wrapper_pid" 2>/dev/null; then break; fi
        if [[ -z "$broker_pid" && -s "$dir/exit_io.json.pid" ]]; then broker_pid=$(cat "$dir/exit_io.json.pid"); fi
        if [[ -n "$broker_pid" ]] && (exec 3<>"/dev/tcp/127.0.0.1/$broker_port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    say "ERROR: broker $name did not start (port $broker_port); its log ($broker_log):"
    sed 's/^/    | /' "$broker_log" >&2 || true
    stop_broker
    stop_upstream
    return 1
}

stop_broker() {
    [[ -n "$wrapper_pid" ]] || return 0
    local target=${broker_pid:-$wrapper_pid}
    kill -TERM "$target" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$wrapper_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$wrapper_pid" 2>/dev/null; then
        say "broker pid $target ignored SIGTERM for 10 s; killing it"
        kill -KILL "$target" 2>/dev/null || true
    fi
    wait "$wrapper_pid" 2>/dev/null || true
    broker_pid=""
    wrapper_pid=""
}

loadgen_args() {
    case "$1" in
        fanin_p1) echo "--scenario fanin --publishers 1 --duration $dur" ;;
        fanin_p8) echo "--scenario fanin --publishers 8 --duration $dur" ;;
        fanin_p64) echo "--scenario fanin --publishers 64 --duration $dur" ;;
        fanin_qos1) echo "--scenario fanin --qos 1 --window 64 --publishers 8 --duration $dur" ;;
        fanout) echo "--scenario fanout --subscribers 100 --duration $dur" ;;
        latency) echo "--scenario latency --rate 20000 --warmup $lat_warm --duration $lat_dur" ;;
        idle) echo "--scenario idle --connections 10000 --settle 3" ;;
        telemetry_commit|telemetry_relaxed)
            echo "--scenario telemetry --devices $tel_devices --window $tel_window --duration $tel_dur" ;;
        query|heartbeat_tick|delivery|bridge_forward|bridge_drain) echo "" ;;
        rules_throughput)
            echo "--scenario rules_ingest --devices $rules_devices --publishers $rules_conns --window $rules_window" \
                 "--metrics $rules_metrics --metrics-per-reading $rules_mpr --duration $rules_dur" ;;
        rules_latency)
            echo "--scenario rules_latency --devices $rules_devices --publishers $rules_conns --rate $rules_bg_rate" \
                 "--metrics $rules_metrics --metrics-per-reading $rules_mpr --probe-interval-ms $rules_probe_ms" \
                 "--warmup $lat_warm --duration $rules_lat_dur" ;;
        *) die "unknown scenario $1 (known: fanin_p1 fanin_p8 fanin_p64 fanin_qos1 fanout latency idle telemetry_commit telemetry_relaxed telemetry query rules_throughput rules_latency heartbeat_tick rules delivery bridge_forward bridge_drain bridge)" ;;
    esac
}

# record JSON SCENARIO BROKER RUN STATUS DIR: appends one line to
# results.jsonl, with what the broker wrote to disk (DIR/exit_io.json) and,
# after a telemetry run against pulsegate, the points it stored
# (DIR/storecheck.json).
record() {
    python3 - "$@" >> "$results" <<'PY'
import json, os, sys
raw, scenario, broker, run, status, d = sys.argv[1:7]
r = json.loads(raw)
r.update(scenario_id=scenario, broker=broker, run=int(run), exit_status=int(status))
def load(name):
    try:
        with open(os.path.join(d, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
io = load("exit_io.json")
if io and "write_bytes" in io:
    r["exit_write_bytes"] = io["write_bytes"]
    r["broker_exit_code"] = io.get("exit_code")
acked = r.get("points_acked")
start = r.get("broker_write_bytes_start")
if acked and start is not None:
    if "exit_write_bytes" in r:
        r["written_bytes"] = r["exit_write_bytes"] - start
        r["bytes_per_point"] = r["written_bytes"] / acked
    if r.get("broker_write_bytes_end") is not None:
        r["bytes_per_point_during_run"] = (r["broker_write_bytes_end"] - start) / acked
try:
    with open(os.path.join(d, "data_bytes")) as f:
        r["data_dir_bytes"] = int(f.read())
except (OSError, ValueError):
    pass
rs = load("rules_setup.json")
if rs:
    r["rules"] = rs.get("rules")
    r["rules_setup_s"] = rs.get("setup_s")
sc = load("storecheck.json")
if sc:
    r["stored_points"] = sc.get("stored_points")
    r["stored_series"] = sc.get("series")
    r["stored_rollup_points"] = sc.get("rollup_points")
    if acked is not None and sc.get("stored_points") is not None:
        r["stored_minus_acked"] = sc["stored_points"] - acked
print(json.dumps(r))
PY
}

# run_delivery BROKER RUN TAG: the broker is running; tenant, the probe rule,
# a webhook integration to pulsegate-hookbench's receiver and a route of
# alert.opened through the API, then pulsegate-hookbench (README.md, "Alert
# delivery"); stops the broker and records the result.
run_delivery() {
    local b=$1 run=$2 tag=$3 hook_port rc=0 json=""
    if [[ -z "$hookbench" ]]; then
        stop_broker
        echo "{\"scenario_id\":\"delivery\",\"broker\":\"$b\",\"run\":$run,\"error\":\"pulsegate-hookbench did not build\"}" >> "$results"
        return
    fi
    hook_port=$(free_port)
    if ! python3 "$here/rules_setup.py" --http "127.0.0.1:$broker_http_port" --admin-password-file "$work/$tag/admin.pw" \
            --metrics 0 --probe --webhook "http://127.0.0.1:$hook_port/hook" > "$work/$tag/rules_setup.json" \
            2> "$work/$tag/rules_setup.err"; then
        say "ERROR: delivery setup failed against $b; rules_setup.py said:"
        sed 's/^/    | /' "$work/$tag/rules_setup.err" >&2 || true
        stop_broker
        echo "{\"scenario_id\":\"delivery\",\"broker\":\"$b\",\"run\":$run,\"error\":\"delivery setup failed\"}" >> "$results"
        return
    fi
    say "  setup: $(cat "$work/$tag/rules_setup.json")"
    json=$("${prio[@]}" "${loadgen_pin[@]}" "$hookbench" --port "$broker_port" --hook-port "$hook_port" \
        --http-port "$broker_http_port" --broker-pid "$broker_pid" --probe-interval-ms "$hook_probe_ms" \
        --warmup "$lat_warm" --duration "$hook_dur" --devices "$hook_devices" 2> "$work/$tag/hookbench.err") || rc=$?
    if [[ $rc != 0 || "$json" != "{"* ]]; then
        say "ERROR: pulsegate-hookbench exited with $rc against $b; its stderr:"
        sed 's/^/    | /' "$work/$tag/hookbench.err" >&2 || true
        say "  broker log tail ($broker_log):"
        tail -n 20 "$broker_log" | sed 's/^/    | /' >&2 || true
    fi
    stop_broker
    [[ ${BENCH_KEEP_DATA:-0} == 1 ]] || rm -rf "$work/$tag/data"
    if [[ "$json" != "{"* ]]; then
        echo "{\"scenario_id\":\"delivery\",\"broker\":\"$b\",\"run\":$run,\"error\":\"hookbench failed\"}" >> "$results"
        return
    fi
    json=${json%\}},\"delivery_workers\":$hook_workers}
    record "$json" delivery "$b" "$run" "$rc" "$work/$tag"
    say "  $(tail -n 1 "$results")"
}

# pg_bridge_metrics BROKER: pulsegate's bridge series from /metrics as one
# JSON object (queued_messages, sent_total, dropped_total_<reason>, ...), or
# nothing.
pg_bridge_metrics() {
    [[ $1 == pg* ]] || return 0
    python3 - "$broker_http_port" <<'PY' 2>/dev/null || true
import json, sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
out = {}
for line in text.splitlines():
    if line.startswith("pulsegate_bridge_") and 'bridge="upstream"' in line:
        name, value = line.rsplit(" ", 1)
        key = name.split("{")[0][len("pulsegate_bridge_"):]
        if "reason=" in name:
            key += "_" + name.split('reason="')[1].split('"')[0]
        out[key] = float(value)
print(json.dumps(out))
PY
}

# run_bridge SCENARIO BROKER RUN TAG: the upstream and the broker (with its
# bridge) are running. bridge_forward: one load generator run.
# bridge_drain: bridge_prepare (the counting subscriber's persistent
# session; the bridge is up), the upstream stopped, bridge_fill
# (BRIDGE_COUNT readings acknowledged), bridge_collect started and then the
# upstream started again; the three JSON objects become one record. Stops
# the broker and the upstream, records the result.
run_bridge() {
    local scenario=$1 b=$2 run=$3 tag=$4 rc=0 json="" d=$work/$4
    local lg=("${prio[@]}" "${loadgen_pin[@]}" "$loadgen" --port "$broker_port" --sub-port "$up_port")
    if [[ $scenario == bridge_forward ]]; then
        json=$("${lg[@]}" --scenario bridge_forward --devices "$bridge_fwd_devices" --window "$bridge_window" \
            --duration "$dur" --quiet 3 --max-drain 120 --broker-pid "$broker_pid" --upstream-pid "$up_pid" \
            2> "$d/loadgen.err") || rc=$?
    else
        local base_ts prep fill="" collect="" queued="" collector
        base_ts=$(date +%s%3N)
        prep=$("${lg[@]}" --scenario bridge_prepare --client-id bench-central --devices "$bridge_fill_devices" \
            2> "$d/prepare.err") || rc=$?
        if [[ $rc == 0 ]]; then
            stop_upstream
            sleep 1 # the bridge sees the loss (both notice the closed socket at once)
            fill=$("${lg[@]}" --scenario bridge_fill --count "$bridge_count" --devices "$bridge_fill_devices" \
                --window "$bridge_window" --base-ts "$base_ts" --max-drain 300 --broker-pid "$broker_pid" \
                2> "$d/fill.err") || rc=$?
            queued=$(pg_bridge_metrics "$b")
            say "  outage: $fill${queued:+; pulsegate bridge: $queued}"
            # The collector connects as soon as the upstream listens.
            "${lg[@]}" --scenario bridge_collect --client-id bench-central --count "$bridge_count" \
                --devices "$bridge_fill_devices" --base-ts "$base_ts" --quiet 10 --max-drain 300 \
                --broker-pid "$broker_pid" --upstream-pid-file "$up_dir/pid" > "$d/collect.json" 2> "$d/collect.err" &
            collector=$!
            sleep 0.5
            rm -f "$up_dir/pid"
            start_upstream
            wait "$collector" || rc=$?
            collect=$(cat "$d/collect.json")
        fi
        json=$(python3 - "$prep" "$fill" "$collect" "$queued" "$(pg_bridge_metrics "$b")" <<'PY' || true
import json, sys
def load(a):
    try:
        return json.loads(a)
    except ValueError:
        return {}
prep, fill, collect, before, after = (load(a) for a in sys.argv[1:6])
if collect:
    r = dict(collect)
    r["scenario"] = "bridge_drain"
    r["bridge_up_s"] = prep.get("bridge_up_s")
    r.update({k: v for k, v in fill.items() if k.startswith("fill_") or k == "window"})
    if before:
        r["pg_queued_before"] = before.get("queued_messages")
        r["pg_dropped_before"] = sum(v for k, v in before.items() if k.startswith("dropped"))
    if after:
        r["pg_queued_after"] = after.get("queued_messages")
        r["pg_sent_after"] = after.get("sent_total")
    print(json.dumps(r))
PY
)
    fi
    if [[ $rc != 0 || "$json" != "{"* ]]; then
        say "ERROR: the load generator exited with $rc against $b ($scenario); its stderr:"
        cat "$d"/*.err 2>/dev/null | sed 's/^/    | /' >&2 || true
        say "  broker log tail ($broker_log):"
        tail -n 20 "$broker_log" | sed 's/^/    | /' >&2 || true
        say "  upstream log tail:"
        tail -n 10 "$up_dir/mosquitto.log" | sed 's/^/    | /' >&2 || true
    fi
    if ! kill -0 "$broker_pid" 2>/dev/null; then
        say "ERROR: broker $b died during $scenario run $run; its log ($broker_log):"
        tail -n 30 "$broker_log" | sed 's/^/    | /' >&2 || true
    fi
    stop_broker
    stop_upstream
    if [[ -d "$d/data" ]]; then
        du -sb "$d/data" | cut -f1 > "$d/data_bytes"
        [[ ${BENCH_KEEP_DATA:-0} == 1 ]] || rm -rf "$d/data"
    fi
    if [[ "$json" != "{"* ]]; then
        echo "{\"scenario_id\":\"$scenario\",\"broker\":\"$b\",\"run\":$run,\"error\":\"load generator failed\"}" >> "$results"
        return
    fi
    json=${json%\}},\"bridge_inflight\":$bridge_inflight,\"bridge_durability\":\"$bridge_durability\"}
    record "$json" "$scenario" "$b" "$run" "$rc" "$d"
    say "  $(tail -n 1 "$results")"
}

# ---- runs ----
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
IFS=',' read -r -a scenario_list <<< "$scenarios"
for scenario in "${scenario_list[@]}"; do
    args=$(loadgen_args "$scenario")
    for ((run = 1; run <= runs; run++)); do
        for b in $(brokers_for "$scenario"); do
            tag=$scenario.$b.$run
            say "$scenario run $run/$runs: $b"
            mkdir -p "$work/$tag"
            if [[ $b == store ]]; then
                if [[ -z "$querybench" ]]; then
                    echo "{\"scenario_id\":\"$scenario\",\"broker\":\"$b\",\"run\":$run,\"error\":\"pulsegate-querybench did not build\"}" >> "$results"
                    continue
                fi
                rc=0
                json=$("${prio[@]}" "$querybench" --dir "$work/$tag" 2> "$work/$tag/querybench.err") || rc=$?
                if [[ "$json" == "{"* ]]; then
                    record "$json" "$scenario" "$b" "$run" "$rc" "$work/$tag"
                    say "  $json"
                else
                    say "ERROR: pulsegate-querybench exited with $rc; its stderr:"
                    sed 's/^/    | /' "$work/$tag/querybench.err" >&2 || true
                    echo "{\"scenario_id\":\"$scenario\",\"broker\":\"$b\",\"run\":$run,\"error\":\"querybench failed\"}" >> "$results"
                fi
                continue
            fi
            if [[ $b == evaluator ]]; then
                if [[ -z "$rulesbench" ]]; then
                    echo "{\"scenario_id\":\"$scenario\",\"broker\":\"$b\",\"run\":$run,\"error\":\"pulsegate-rulesbench did not build\"}" >> "$results"
                    continue
                fi
                rc=0
                json=$("${prio[@]}" "$rulesbench" --measure-intervals "$hb_intervals" --th-seconds "$th_seconds" \
                    2> "$work/$tag/rulesbench.err") || rc=$?
                if [[ "$json" == "{"* ]]; then
                    record "$json" "$scenario" "$b" "$run" "$rc" "$work/$tag"
                    say "  $json"
                else
                    say "ERROR: pulsegate-rulesbench exited with $rc; its stderr:"
                    sed 's/^/    | /' "$work/$tag/rulesbench.err" >&2 || true
                    echo "{\"scenario_id\":\"$scenario\",\"broker\":\"$b\",\"run\":$run,\"error\":\"rulesbench failed\"}" >> "$results"
                fi
                continue
            fi
            if ! start_broker "$b" "$tag" "$scenario"; then
                echo "{\"scenario_id\":\"$scenario\",\"broker\":\"$b\",\"run\":$run,\"error\":\"broker did not start\"}" >> "$results"
                continue
            fi
            if [[ $scenario == delivery ]]; then
                run_delivery "$b" "$run" "$tag"
                continue
            fi
            if [[ $scenario == bridge_* ]]; then
                run_bridge "$scenario" "$b" "$run" "$tag"
                continue
            fi
            extra=""
            if [[ $scenario == rules_* && $b == pg* ]]; then
                # The tenant of anonymous clients, a tenant_admin, and the
                # rules (none for pgN in rules_throughput), through the API.
                setup_args=(--http "127.0.0.1:$broker_http_port" --admin-password-file "$work/$tag/admin.pw"
                            --metrics "$rules_metrics" --per-metric "$rules_per_metric")
                [[ $b == *_rules ]] || setup_args=(--http "127.0.0.1:$broker_http_port"
                            --admin-password-file "$work/$tag/admin.pw" --metrics 0)
                [[ $scenario == rules_latency ]] && setup_args+=(--probe)
                if ! python3 "$here/rules_setup.py" "${setup_args[@]}" > "$work/$tag/rules_setup.json" \
                        2> "$work/$tag/rules_setup.err"; then
                    say "ERROR: creating the rules failed against $b; rules_setup.py said:"
                    sed 's/^/    | /' "$work/$tag/rules_setup.err" >&2 || true
                    stop_broker
                    echo "{\"scenario_id\":\"$scenario\",\"broker\":\"$b\",\"run\":$run,\"error\":\"rules setup failed\"}" >> "$results"
                    continue
                fi
                say "  rules: $(cat "$work/$tag/rules_setup.json")"
                extra="--http-port $broker_http_port"
                [[ $scenario == rules_latency ]] && extra+=" --alerts"
            fi
            rc=0
            # shellcheck disable=SC2086
            json=$("${prio[@]}" "${loadgen_pin[@]}" "$loadgen" --port "$broker_port" --broker-pid "$broker_pid" $args $extra 2> "$work/$tag/loadgen.err") || rc=$?
            if [[ $rc != 0 || "$json" != "{"* ]]; then
                say "ERROR: load generator exited with $rc against $b ($scenario); its stderr:"
                sed 's/^/    | /' "$work/$tag/loadgen.err" >&2 || true
                say "  broker log tail ($broker_log):"
                tail -n 20 "$broker_log" | sed 's/^/    | /' >&2 || true
                if ! kill -0 "$broker_pid" 2>/dev/null; then say "  (the broker is no longer running)"; fi
            fi
            if ! kill -0 "$broker_pid" 2>/dev/null; then
                say "ERROR: broker $b died during $scenario run $run; its log ($broker_log):"
                tail -n 30 "$broker_log" | sed 's/^/    | /' >&2 || true
            fi
            stop_broker
            if [[ "$json" != "{"* ]]; then
                echo "{\"scenario_id\":\"$scenario\",\"broker\":\"$b\",\"run\":$run,\"error\":\"load generator failed\"}" >> "$results"
                continue
            fi
            # Stored points: the daemon has stopped, its data dir is ours.
            if [[ $scenario == telemetry_* && $b == pg* ]]; then
                if [[ -z "$storecheck" ]]; then
                    say "WARNING: no pulsegate-storecheck; stored points not counted"
                elif ! "$storecheck" --data-dir "$work/$tag/data" > "$work/$tag/storecheck.json" \
                        2> "$work/$tag/storecheck.err"; then
                    say "ERROR: pulsegate-storecheck failed on $work/$tag/data; its stderr:"
                    sed 's/^/    | /' "$work/$tag/storecheck.err" >&2 || true
                fi
            fi
            if [[ -d "$work/$tag/data" ]]; then
                du -sb "$work/$tag/data" | cut -f1 > "$work/$tag/data_bytes"
                # Tens of MB per telemetry run: not kept unless asked.
                [[ ${BENCH_KEEP_DATA:-0} == 1 ]] || rm -rf "$work/$tag/data"
            fi
            record "$json" "$scenario" "$b" "$run" "$rc" "$work/$tag"
            say "  $(tail -n 1 "$results")"
        done
    done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

mosq_version=$("$mosquitto_bin" -h 2>/dev/null | head -n 1 || true)
python3 "$here/report.py" "$results" \
    --mode "$([[ $quick == 1 ]] && echo "quick ($runs run(s), ${dur} s" || echo "full ($runs runs, median; ${dur} s")$(want_telemetry && echo "; telemetry ${tel_dur} s")$( (want rules_throughput || want rules_latency) && echo "; rules ${rules_dur} s, rules latency ${lat_warm} + ${rules_lat_dur} s")$(want delivery && echo "; delivery ${lat_warm} + ${hook_dur} s")$( (want bridge_forward || want bridge_drain) && echo "; bridge forward ${dur} s, drain ${bridge_count} readings"))$build_note" \
    --load "$load_start -> $load_end" \
    --nice "${nice_level:-0 (default)}" \
    --pin "$pin" \
    --mosquitto "$mosq_version" \
    --pulsegate "${pg_status:-$pulsegate}" \
    --out "$out_md"
say "table written to $out_md; raw results in $results"
