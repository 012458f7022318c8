// pulsegate-rulesbench: the rules engine's evaluator on its own (no broker,
// no thread, no database), driven with a synthetic clock, for
// test/bench/run.sh (scenario heartbeat_tick).
//
// heartbeat: --hb-devices registered devices (100,000) under one heartbeat
//   rule (interval_s 10, missed 3: silent after 30 s). Every device sends
//   one message per interval at a random time in it, so deadlines keep
//   moving; at the start of every interval a random --silent-fraction (1%)
//   of the devices that are talking goes quiet for --silent-intervals (4),
//   longer than the timeout, so NO_HEARTBEAT alerts keep opening (30 s into
//   the silence) and closing (at the next message). The clock advances in
//   steps of tick_ms (100 ms, the engine's timer resolution): the messages
//   of the step go through on_message(), then one tick() fires what is due.
//   After --warmup-intervals (steady state: every device's timer has been
//   re-armed and alerts open and close at a steady pace), --measure-intervals
//   are timed: each tick() call on its own (wall time: mean, p50, p99, max;
//   this thread's CPU time, which preemption does not inflate: mean, p99,
//   max; and the timers it fired), on_message() per call (the step's
//   messages timed together), and once per simulated second the flush the
//   engine thread does (take_liveness + take_dirty). Memory: RSS growth
//   after set_devices + set_rules and at the end.
//
// threshold: --th-rules threshold rules (1,000: --metrics metrics x
//   --per-metric rules, none ever breached) over --th-devices devices
//   (10,000), each reading carrying --metrics-per-reading metrics, so each
//   reading is evaluated against per-metric x metrics-per-reading rules.
//   on_reading() in a loop for --th-seconds of wall time on one core:
//   readings/s and rule evaluations/s (the evaluator's own counter).
//
// One JSON object on stdout.

#include "engine/evaluator.hpp"

#include <CLI/CLI.hpp>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

namespace engine = pulsegate::engine;
namespace st = pulsegate::storage::state;
using steady = std::chrono::steady_clock;

constexpr std::int64_t t0_ms = 1'700'000'000'000;
constexpr char tenant[] = "bench";

std::int64_t ns_since(steady::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - t).count();
}

// CPU time of this thread: unlike wall time, not inflated when the thread
// is preempted (the machine is shared with other work).
std::int64_t thread_cpu_ns() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// VmRSS of this process in KiB.
long rss_kb() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return 0;
}

std::string device_name(int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "dev%06d", i);
    return buf;
}

struct summary {
    double mean = 0, p50 = 0, p99 = 0, max = 0;
};
summary summarise(std::vector<double> v) {
    summary s;
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    double sum = 0;
    for (double x : v) sum += x;
    s.mean = sum / static_cast<double>(v.size());
    auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5))]; };
    s.p50 = at(0.5);
    s.p99 = at(0.99);
    s.max = v.back();
    return s;
}

struct hb_settings {
    int devices = 100'000;
    std::int64_t interval_s = 10;
    std::int64_t missed = 3;
    double silent_fraction = 0.01;
    int silent_intervals = 4;
    int warmup_intervals = 8;
    int measure_intervals = 6;
    std::int64_t tick_ms = 100;
    unsigned seed = 1;
};

void run_heartbeat(const hb_settings& s) {
    const long rss0 = rss_kb();
    engine::evaluator ev({.heartbeat_grace_ms = 0, .tick_ms = s.tick_ms}, t0_ms, 1);
    std::vector<std::string> ids;
    std::vector<engine::evaluator::registered_device> reg;
    ids.reserve(static_cast<std::size_t>(s.devices));
    reg.reserve(static_cast<std::size_t>(s.devices));
    for (int i = 0; i < s.devices; ++i) {
        ids.push_back(device_name(i));
        reg.push_back({ids.back(), {}, t0_ms});
    }
    const auto setup_start = steady::now();
    ev.set_devices(tenant, reg, t0_ms);
    st::rule_record rule;
    rule.id = 1;
    rule.tenant = tenant;
    rule.name = "heartbeat";
    rule.kind = st::rule_kind::heartbeat;
    rule.interval_s = s.interval_s;
    rule.missed = s.missed;
    rule.created_at_ms = rule.updated_at_ms = t0_ms;
    ev.set_rules(tenant, std::span<const st::rule_record>(&rule, 1), t0_ms);
    const double setup_ms = static_cast<double>(ns_since(setup_start)) / 1e6;
    const long rss_setup = rss_kb() - rss0;
    reg.clear();
    reg.shrink_to_fit();

    std::mt19937_64 rng(s.seed);
    const std::int64_t period = s.interval_s * 1000;
    std::uniform_int_distribution<std::int64_t> offset(0, period - 1);
    std::uniform_real_distribution<double> coin(0, 1);
    std::vector<int> silent_until(static_cast<std::size_t>(s.devices), -1); // interval index
    std::vector<std::pair<std::int64_t, int>> schedule;                     // (time, device)
    std::vector<st::liveness_record> liveness;
    std::vector<st::alert_record> dirty;

    std::vector<double> tick_ns, tick_cpu_ns, fired_per_tick, flush_ns;
    double message_ns = 0;
    std::uint64_t messages = 0, opened = 0, closed = 0, flushed_devices = 0;
    const int intervals = s.warmup_intervals + s.measure_intervals;
    const auto ticks_per_interval = period / s.tick_ms;
    const auto ticks_per_second = std::max<std::int64_t>(1, 1000 / s.tick_ms);
    const auto wall_start = steady::now();
    for (int k = 0; k < intervals; ++k) {
        const bool measuring = k >= s.warmup_intervals;
        const std::int64_t base = t0_ms + k * period;
        schedule.clear();
        for (int d = 0; d < s.devices; ++d) {
            auto& until = silent_until[static_cast<std::size_t>(d)];
            if (until >= k) continue;
            if (coin(rng) < s.silent_fraction) {
                until = k + s.silent_intervals - 1;
                continue;
            }
            schedule.emplace_back(base + offset(rng), d);
        }
        std::sort(schedule.begin(), schedule.end());
        std::size_t next = 0;
        for (std::int64_t i = 1; i <= ticks_per_interval; ++i) {
            const std::int64_t now = base + i * s.tick_ms;
            const auto m0 = steady::now();
            std::uint64_t n = 0;
            for (; next < schedule.size() && schedule[next].first < now; ++next, ++n)
                ev.on_message(tenant, ids[static_cast<std::size_t>(schedule[next].second)], schedule[next].first);
            const auto m_ns = ns_since(m0);
            const auto fired0 = ev.stats().timers_fired;
            const auto c0 = thread_cpu_ns();
            const auto t0 = steady::now();
            ev.tick(now);
            const auto t_ns = ns_since(t0);
            const auto c_ns = thread_cpu_ns() - c0;
            const auto fired = ev.stats().timers_fired - fired0;
            auto& events = ev.events();
            std::uint64_t o = 0, c = 0;
            for (const auto& e : events) {
                if (e.type == engine::alert_event_type::opened) ++o;
                if (e.type == engine::alert_event_type::closed) ++c;
            }
            events.clear();
            double f_ns = -1;
            if (i % ticks_per_second == 0) {
                const auto f0 = steady::now();
                ev.take_liveness(liveness);
                ev.take_dirty(dirty);
                f_ns = static_cast<double>(ns_since(f0));
                if (measuring) flushed_devices += liveness.size();
                liveness.clear();
                dirty.clear();
            }
            if (!measuring) continue;
            messages += n;
            message_ns += static_cast<double>(m_ns);
            tick_ns.push_back(static_cast<double>(t_ns));
            tick_cpu_ns.push_back(static_cast<double>(c_ns));
            fired_per_tick.push_back(static_cast<double>(fired));
            if (f_ns >= 0) flush_ns.push_back(f_ns);
            opened += o;
            closed += c;
        }
    }
    const double wall_s = static_cast<double>(ns_since(wall_start)) / 1e9;
    const auto stats = ev.stats();
    const auto tick = summarise(tick_ns);
    const auto tick_cpu = summarise(tick_cpu_ns);
    const auto fired = summarise(fired_per_tick);
    const auto flush = summarise(flush_ns);
    const double measured_s = static_cast<double>(s.measure_intervals * s.interval_s);
    std::printf("\"heartbeat\":{\"devices\":%d,\"interval_s\":%lld,\"missed\":%lld,\"tick_ms\":%lld,"
                "\"silent_fraction\":%.4f,\"silent_intervals\":%d,\"warmup_intervals\":%d,\"measure_intervals\":%d,",
                s.devices, static_cast<long long>(s.interval_s), static_cast<long long>(s.missed),
                static_cast<long long>(s.tick_ms), s.silent_fraction, s.silent_intervals, s.warmup_intervals,
                s.measure_intervals);
    std::printf("\"ticks\":%zu,\"tick_mean_ns\":%.0f,\"tick_p50_ns\":%.0f,\"tick_p99_ns\":%.0f,\"tick_max_ns\":%.0f,"
                "\"tick_cpu_mean_ns\":%.0f,\"tick_cpu_p99_ns\":%.0f,\"tick_cpu_max_ns\":%.0f,"
                "\"fired_per_tick_mean\":%.1f,\"fired_per_tick_max\":%.0f,\"tick_ns_per_fired\":%.1f,",
                tick_ns.size(), tick.mean, tick.p50, tick.p99, tick.max, tick_cpu.mean, tick_cpu.p99, tick_cpu.max,
                fired.mean, fired.max,
                fired.mean > 0 ? tick.mean / fired.mean : 0.0);
    std::printf("\"messages\":%llu,\"messages_per_s_simulated\":%.0f,\"on_message_mean_ns\":%.1f,",
                static_cast<unsigned long long>(messages), static_cast<double>(messages) / measured_s,
                messages ? message_ns / static_cast<double>(messages) : 0.0);
    std::printf("\"flush_mean_ns\":%.0f,\"flush_max_ns\":%.0f,\"flushed_devices_per_s\":%.0f,",
                flush.mean, flush.max, static_cast<double>(flushed_devices) / measured_s);
    std::printf("\"alerts_opened_per_s\":%.1f,\"alerts_closed_per_s\":%.1f,\"open_alerts\":%zu,\"timers\":%zu,",
                static_cast<double>(opened) / measured_s, static_cast<double>(closed) / measured_s, stats.open_alerts,
                stats.timers);
    // Engine thread time per simulated second: messages + ticks + flush.
    const double busy_ns = message_ns + tick.mean * static_cast<double>(tick_ns.size()) +
                           flush.mean * static_cast<double>(flush_ns.size());
    std::printf("\"engine_busy_pct\":%.3f,\"setup_ms\":%.1f,\"rss_setup_kb\":%ld,\"rss_kb\":%ld,\"wall_s\":%.2f}",
                100.0 * busy_ns / (measured_s * 1e9), setup_ms, rss_setup, rss_kb() - rss0, wall_s);
}

struct th_settings {
    int devices = 10'000;
    int metrics = 100;
    int per_metric = 10;
    int metrics_per_reading = 4;
    double seconds = 2.0;
};

void run_threshold(const th_settings& s) {
    engine::evaluator ev({.heartbeat_grace_ms = 0, .tick_ms = 100}, t0_ms, 1);
    std::vector<st::rule_record> rules;
    for (int m = 0; m < s.metrics; ++m)
        for (int j = 0; j < s.per_metric; ++j) {
            st::rule_record r;
            r.id = static_cast<std::int64_t>(rules.size()) + 1;
            r.tenant = tenant;
            char name[16];
            std::snprintf(name, sizeof name, "m%03d", m);
            r.metric = name;
            r.name = r.metric + "-" + std::to_string(j);
            r.kind = st::rule_kind::threshold;
            // As rules_setup.py: never breached by values in [0, 1000).
            r.op = j % 2 == 0 ? st::compare_op::gt : st::compare_op::lt;
            r.value = j % 2 == 0 ? 1000 + j : -1 - j;
            r.created_at_ms = r.updated_at_ms = t0_ms;
            rules.push_back(std::move(r));
        }
    ev.set_rules(tenant, rules, t0_ms);
    std::vector<std::uint32_t> metric_ids;
    for (int m = 0; m < s.metrics; ++m) {
        char name[16];
        std::snprintf(name, sizeof name, "m%03d", m);
        metric_ids.push_back(*ev.metric_id(name));
    }
    std::vector<std::string> ids;
    for (int i = 0; i < s.devices; ++i) ids.push_back(device_name(i));
    std::mt19937_64 rng(2);
    std::uniform_real_distribution<double> value(100, 1000);
    std::vector<double> values(4096);
    for (auto& v : values) v = value(rng);

    std::int64_t now = t0_ms;
    std::uint64_t reading = 0;
    auto one = [&] {
        const auto d = static_cast<std::size_t>(reading % ids.size());
        for (int k = 0; k < s.metrics_per_reading; ++k) {
            const auto metric = (d * static_cast<std::size_t>(s.metrics_per_reading) + static_cast<std::size_t>(k)) %
                                metric_ids.size();
            ev.on_reading(tenant, ids[d], metric_ids[metric], values[(reading + static_cast<std::uint64_t>(k)) % values.size()],
                          now);
        }
        ++reading;
        if (reading % 1000 == 0) ++now;
    };
    // Warm-up: every (rule, device) slot exists.
    for (std::size_t i = 0; i < ids.size(); ++i) one();
    const auto evals0 = ev.stats().evaluations;
    const auto readings0 = reading;
    const auto start = steady::now();
    double elapsed = 0;
    do {
        for (int i = 0; i < 10'000; ++i) one();
        ev.tick(now);
        elapsed = static_cast<double>(ns_since(start)) / 1e9;
    } while (elapsed < s.seconds);
    const auto evals = ev.stats().evaluations - evals0;
    const auto readings = reading - readings0;
    std::printf("\"threshold\":{\"rules\":%zu,\"devices\":%d,\"metrics\":%d,\"metrics_per_reading\":%d,"
                "\"evaluations_per_reading\":%.1f,\"readings\":%llu,\"seconds\":%.2f,\"readings_per_s\":%.0f,"
                "\"evaluations_per_s\":%.0f,\"ns_per_reading\":%.1f,\"ns_per_evaluation\":%.2f,\"alerts_opened\":%llu}",
                rules.size(), s.devices, s.metrics, s.metrics_per_reading,
                static_cast<double>(evals) / static_cast<double>(readings), static_cast<unsigned long long>(readings),
                elapsed, static_cast<double>(readings) / elapsed, static_cast<double>(evals) / elapsed,
                elapsed * 1e9 / static_cast<double>(readings), elapsed * 1e9 / static_cast<double>(evals),
                static_cast<unsigned long long>(ev.stats().opened));
}

} // namespace

int main(int argc, char** argv) {
    hb_settings hb;
    th_settings th;
    CLI::App app{"pulsegate-rulesbench: the rules evaluator alone, synthetic clock (JSON on stdout)"};
    app.add_option("--hb-devices", hb.devices, "heartbeat: registered devices")->check(CLI::Range(1, 10'000'000));
    app.add_option("--interval-s", hb.interval_s, "heartbeat: rule interval_s (each device sends once per interval)")
        ->check(CLI::Range(1, 3600));
    app.add_option("--missed", hb.missed, "heartbeat: rule missed")->check(CLI::Range(1, 100));
    app.add_option("--silent-fraction", hb.silent_fraction, "heartbeat: devices going quiet at each interval")
        ->check(CLI::Range(0.0, 1.0));
    app.add_option("--silent-intervals", hb.silent_intervals, "heartbeat: how long a quiet device stays quiet")
        ->check(CLI::Range(1, 1000));
    app.add_option("--warmup-intervals", hb.warmup_intervals, "heartbeat: intervals before timing")
        ->check(CLI::Range(0, 1000));
    app.add_option("--measure-intervals", hb.measure_intervals, "heartbeat: intervals timed")->check(CLI::Range(1, 1000));
    app.add_option("--tick-ms", hb.tick_ms, "heartbeat: clock step and timer resolution")->check(CLI::Range(1, 10000));
    app.add_option("--th-devices", th.devices, "threshold: devices")->check(CLI::Range(1, 1'000'000));
    app.add_option("--metrics", th.metrics, "threshold: metrics")->check(CLI::Range(1, 1000));
    app.add_option("--per-metric", th.per_metric, "threshold: rules per metric")->check(CLI::Range(1, 1000));
    app.add_option("--metrics-per-reading", th.metrics_per_reading, "threshold: metrics in a reading")
        ->check(CLI::Range(1, 64));
    app.add_option("--th-seconds", th.seconds, "threshold: wall time of the timed loop")->check(CLI::Range(0.1, 600.0));
    CLI11_PARSE(app, argc, argv);
    if (th.metrics_per_reading > th.metrics) {
        std::fprintf(stderr, "rulesbench: --metrics-per-reading must not exceed --metrics\n");
        return 1;
    }
    std::printf("{");
    run_heartbeat(hb);
    std::printf(",");
    run_threshold(th);
    std::printf("}\n");
    return 0;
}
