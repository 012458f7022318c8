#!/usr/bin/env bash
# pulsegate vs Mosquitto on this machine, in one command:
#
#   bash test/bench/run.sh [--quick] [--only-mosquitto] [--runs N] [--scenarios LIST]
#                          [--nice N]
#
# Builds the load generator (and the daemon, if it builds) in ./build, then
# for every scenario runs each broker -- Mosquitto, pulsegate with 1 shard,
# pulsegate with 2 shards -- started fresh on its own free port, N times
# (3; --quick: 1 run with shorter durations), and prints a markdown table of
# the medians, also written to test/bench/results.md. See README.md.
# --nice N runs the brokers and the load generator at that nice level (e.g.
# -10, needs root) so that other work on the machine disturbs them less.
#
# Environment:
#   BUILD_DIR     build directory (default ./build; configured if missing)
#   LOADGEN       use this load generator binary instead of building one
#   PULSEGATE     use this pulsegate binary instead of <build>/daemon/pulsegate
#   MOSQUITTO     mosquitto binary (default: mosquitto on PATH or /usr/sbin)
#   PG_EXTRA_TOML extra TOML appended to pulsegate's config
#   BENCH_OUT     where results.md goes (default test/bench/results.md)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$root/build}
out_md=${BENCH_OUT:-$here/results.md}

quick=0
nice_level=""
only_mosquitto=0
runs=""
scenarios="fanin_p1,fanin_p8,fanin_p64,fanin_qos1,fanout,latency,idle"
usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'
    echo "scenarios: $scenarios"
}
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 ;;
        --only-mosquitto) only_mosquitto=1 ;;
        --nice) nice_level=$2; shift ;;
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
    dur=2; lat_dur=2; lat_warm=1
else
    dur=5; lat_dur=5; lat_warm=1
fi

say() { echo "[bench] $*" >&2; }
die() { echo "[bench] ERROR: $*" >&2; exit 1; }

prio=(env)
if [[ -n "$nice_level" ]]; then
    nice -n "$nice_level" true 2>/dev/null && [[ $(nice -n "$nice_level" nice) == "$nice_level" ]] \
        || die "cannot run at nice level $nice_level (negative levels need root)"
    prio=(nice -n "$nice_level")
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
    ninja -C "$build" -j2 test/bench/pulsegate-loadgen >&2 || die "building pulsegate-loadgen failed"
    loadgen=$build/test/bench/pulsegate-loadgen
fi
[[ -x "$loadgen" ]] || die "no load generator at $loadgen"

pg_status=""
if [[ $only_mosquitto == 1 ]]; then
    pg_status="skipped (--only-mosquitto)"
elif [[ -n "$pulsegate" ]]; then
    [[ -x "$pulsegate" ]] || pg_status="PULSEGATE=$pulsegate is not executable"
else
    say "building the pulsegate daemon"
    if ninja -C "$build" -j2 daemon/pulsegate >&2; then
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

# ---- brokers ----
work=$(mktemp -d /tmp/pulsegate-bench.XXXXXX)
results=$work/results.jsonl
: > "$results"
say "work dir (configs, logs, raw results): $work"

broker_pid=""
broker_log=""
cleanup() {
    if [[ -n "$broker_pid" ]]; then kill "$broker_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_broker NAME TAG: starts a fresh broker, sets broker_pid/broker_port/broker_log.
start_broker() {
    local name=$1 tag=$2 dir conf
    dir=$work/$tag
    mkdir -p "$dir"
    broker_port=$(free_port)
    broker_log=$dir/broker.log
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
            (ulimit -n "$(ulimit -Hn)"; exec "${prio[@]}" "$mosquitto_bin" -c "$conf") > "$broker_log" 2>&1 &
            ;;
        pg1|pg2)
            conf=$dir/pulsegate.toml
            mkdir -p "$dir/data"
            cat > "$conf" <<EOF
[mqtt]
listen = "127.0.0.1:$broker_port"
shards = ${name#pg}
# The same bounds as Mosquitto's config above.
max_queued_messages = 1000000
max_inflight = 1000
[http]
listen = "127.0.0.1:$(free_port)"
[auth]
allow_anonymous = true
[storage]
data_dir = "$dir/data"
[log]
level = "warn"
${PG_EXTRA_TOML:-}
EOF
            (ulimit -n "$(ulimit -Hn)"; exec "${prio[@]}" "$pulsegate" serve --config "$conf") > "$broker_log" 2>&1 &
            ;;
    esac
    broker_pid=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$broker_pid" 2>/dev/null; then break; fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$broker_port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    say "ERROR: broker $name did not start (port $broker_port); its log ($broker_log):"
    sed 's/^/    | /' "$broker_log" >&2 || true
    stop_broker
    return 1
}

stop_broker() {
    [[ -n "$broker_pid" ]] || return 0
    kill -TERM "$broker_pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$broker_pid" 2>/dev/null; then
        say "broker pid $broker_pid ignored SIGTERM for 10 s; killing it"
        kill -KILL "$broker_pid" 2>/dev/null || true
    fi
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=""
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
        *) die "unknown scenario $1" ;;
    esac
}

# ---- runs ----
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
IFS=',' read -r -a scenario_list <<< "$scenarios"
for scenario in "${scenario_list[@]}"; do
    args=$(loadgen_args "$scenario")
    for ((run = 1; run <= runs; run++)); do
        for b in $brokers; do
            tag=$scenario.$b.$run
            say "$scenario run $run/$runs: $b"
            if ! start_broker "$b" "$tag"; then
                echo "{\"scenario_id\":\"$scenario\",\"broker\":\"$b\",\"run\":$run,\"error\":\"broker did not start\"}" >> "$results"
                continue
            fi
            rc=0
            # shellcheck disable=SC2086
            json=$("${prio[@]}" "$loadgen" --port "$broker_port" --broker-pid "$broker_pid" $args 2> "$work/$tag/loadgen.err") || rc=$?
            if [[ "$json" == "{"* ]]; then
                echo "$json" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
d.update(scenario_id=sys.argv[1], broker=sys.argv[2], run=int(sys.argv[3]), exit_status=int(sys.argv[4]))
print(json.dumps(d))' "$scenario" "$b" "$run" "$rc" >> "$results"
                say "  $json"
            fi
            if [[ $rc != 0 || "$json" != "{"* ]]; then
                say "ERROR: load generator exited with $rc against $b ($scenario); its stderr:"
                sed 's/^/    | /' "$work/$tag/loadgen.err" >&2 || true
                say "  broker log tail ($broker_log):"
                tail -n 20 "$broker_log" | sed 's/^/    | /' >&2 || true
                if ! kill -0 "$broker_pid" 2>/dev/null; then say "  (the broker is no longer running)"; fi
                if [[ "$json" != "{"* ]]; then
                    echo "{\"scenario_id\":\"$scenario\",\"broker\":\"$b\",\"run\":$run,\"error\":\"load generator failed\"}" >> "$results"
                fi
            fi
            if ! kill -0 "$broker_pid" 2>/dev/null; then
                say "ERROR: broker $b died during $scenario run $run; its log ($broker_log):"
                tail -n 30 "$broker_log" | sed 's/^/    | /' >&2 || true
            fi
            stop_broker
        done
    done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

mosq_version=$("$mosquitto_bin" -h 2>/dev/null | head -n 1 || true)
python3 "$here/report.py" "$results" \
    --mode "$([[ $quick == 1 ]] && echo "quick ($runs run(s), ${dur} s)" || echo "full ($runs runs, median; ${dur} s)")$build_note" \
    --load "$load_start -> $load_end" \
    --nice "${nice_level:-0 (default)}" \
    --mosquitto "$mosq_version" \
    --pulsegate "${pg_status:-$pulsegate}" \
    --out "$out_md"
say "table written to $out_md; raw results in $results"
