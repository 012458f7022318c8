// pulsegate-querybench: the telemetry store on its own (no broker, no
// network), for test/bench/run.sh.
//
// Two stores in a fresh temporary directory, filled through
// lmdb_store::append() with sync commits (group commit) and 100,000 raw
// slots per series (the defaults):
//
// fleet/: --fleet-devices devices x 4 metrics x --fleet-readings readings,
//   interleaved as devices report: the MQTT telemetry scenario's shape
//   without MQTT. Default checkpoint settings. Its rate is the storage-only
//   ingest figure, until flush() returned and including the final
//   checkpoint of stop().
//
// query/: the charts' data, checkpoints deferred until stop() so that the
//   first round of queries reads every point from the journal:
//   - series "q24h/v": 24 h at 1 Hz (86,400 points);
//   - series "q7d/v": 7 days at 1 Hz (604,800 points): the raw ring keeps
//     only the last 100,000, so a 7-day chart must come from the rollups;
//   - series "q8d/v": 8 days at 1 Hz, queried for its last 7 days: a device
//     older than the minute ring, the usual case in the field;
//   - device "q4m": 1,000 readings of 4 metrics (for latest()).
//
// Then it times the queries a dashboard makes, each the median over many
// iterations, twice: right after the fill (points only in the journal, read
// through the writer's in-memory copy) and after stop() + reopen (every point
// checkpointed into the rings, the steady state); a running daemon is in
// between. Each query reports the ring that served it (raw, minute, hour)
// and the points returned.
//
// One JSON object on stdout; exit status 0, or 2 when the store fails.

#include "storage/lmdb_store.hpp"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace storage = pulsegate::storage;
using steady = std::chrono::steady_clock;

// 2023-11-14T22:00:00Z: on a whole hour, so 7 days of points fill exactly the
// 10,080 slots of the minute ring (one minute off and its oldest row is gone).
constexpr std::int64_t t0_ms = 472'222LL * 3'600'000;
constexpr std::int64_t day_ms = 86'400'000;
constexpr char tenant[] = "default";

double seconds(steady::duration d) { return std::chrono::duration<double>(d).count(); }

// Appends, waiting for the writer when its queue is full.
void append(storage::lmdb_store& s, const storage::reading& r) {
    while (s.append(r, nullptr) == storage::append_result::overloaded)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

struct fill_result {
    std::uint64_t points = 0;
    double seconds = 0;      // appends until flush() returned
    double stop_seconds = 0; // stop(): the final checkpoint
    double rate() const { return seconds > 0 ? static_cast<double>(points) / seconds : 0.0; }
    double rate_with_stop() const {
        return seconds + stop_seconds > 0 ? static_cast<double>(points) / (seconds + stop_seconds) : 0.0;
    }
};

fill_result fill_series(storage::lmdb_store& s, std::string_view device, std::int64_t n) {
    storage::metric_value mv{"v", 0};
    auto t = steady::now();
    for (std::int64_t i = 0; i < n; ++i) {
        mv.value = static_cast<double>(i % 3600) * 0.01;
        append(s, {tenant, device, t0_ms + i * 1000, std::span(&mv, 1)});
    }
    s.flush();
    return {static_cast<std::uint64_t>(n), seconds(steady::now() - t), 0};
}

fill_result fill_fleet(storage::lmdb_store& s, int devices, int readings) {
    std::vector<std::string> names;
    for (int d = 0; d < devices; ++d) names.push_back("fleet" + std::to_string(d));
    storage::metric_value mv[] = {{"temp", 0}, {"hum", 0}, {"pres", 0}, {"volt", 0}};
    auto t = steady::now();
    for (int i = 0; i < readings; ++i)
        for (int d = 0; d < devices; ++d) {
            for (auto& m : mv) m.value = static_cast<double>((i * 7 + d) % 1000);
            append(s, {tenant, names[static_cast<std::size_t>(d)], t0_ms + i * 10, mv});
        }
    s.flush();
    return {static_cast<std::uint64_t>(devices) * static_cast<std::uint64_t>(readings) * 4,
            seconds(steady::now() - t), 0};
}

const char* name_of(storage::resolution r) {
    switch (r) {
    case storage::resolution::raw: return "raw";
    case storage::resolution::minute: return "minute";
    case storage::resolution::hour: return "hour";
    }
    return "?";
}

struct timing {
    double median_us = 0, p90_us = 0, min_us = 0;
    std::size_t iterations = 0;
    std::string source;
    std::size_t points = 0;
};

// Runs `f` at least `min_iter` times and for at least `min_s` seconds.
template <class F>
timing time_it(F f, int min_iter, double min_s) {
    std::vector<double> us;
    auto start = steady::now();
    while (static_cast<int>(us.size()) < min_iter || seconds(steady::now() - start) < min_s) {
        auto a = steady::now();
        f();
        us.push_back(seconds(steady::now() - a) * 1e6);
        if (us.size() >= 100000) break;
    }
    std::sort(us.begin(), us.end());
    timing t;
    t.iterations = us.size();
    t.median_us = us[us.size() / 2];
    t.p90_us = us[us.size() * 9 / 10];
    t.min_us = us.front();
    return t;
}

timing time_query(const storage::lmdb_store& s, std::string_view device, std::int64_t from, std::int64_t to,
                  int min_iter, double min_s) {
    storage::series_query q;
    q.series = {tenant, std::string(device), "v"};
    q.from_ms = from;
    q.to_ms = to;
    q.max_points = 1000;
    storage::query_result last;
    bool ok = true;
    auto t = time_it(
        [&] {
            auto r = s.query(q);
            if (!r) ok = false;
            else last = std::move(*r);
        },
        min_iter, min_s);
    if (!ok) throw std::runtime_error("query of " + std::string(device) + " failed");
    t.source = name_of(last.source);
    t.points = last.points.size();
    return t;
}

timing time_latest(const storage::lmdb_store& s, int min_iter, double min_s) {
    std::size_t n = 0;
    auto t = time_it([&] { n = s.latest(tenant, "q4m").size(); }, min_iter, min_s);
    t.source = "latest";
    t.points = n;
    return t;
}

void print_timing(const char* name, const timing& t, bool comma) {
    std::printf("\"%s\":{\"median_us\":%.1f,\"p90_us\":%.1f,\"min_us\":%.1f,\"iterations\":%zu,\"source\":\"%s\","
                "\"points\":%zu}%s",
                name, t.median_us, t.p90_us, t.min_us, t.iterations, t.source.c_str(), t.points, comma ? "," : "");
}

struct query_set {
    timing day, week, week_of_8d, hour, latest;
};

query_set run_queries(const storage::lmdb_store& s, int min_iter, double min_s) {
    const std::int64_t day_end = t0_ms + day_ms - 1000, week_end = t0_ms + 7 * day_ms - 1000;
    query_set q;
    q.day = time_query(s, "q24h", t0_ms, day_end, min_iter, min_s);
    q.week = time_query(s, "q7d", t0_ms, week_end, min_iter, min_s);
    const std::int64_t last_8d = t0_ms + 8 * day_ms - 1000;
    q.week_of_8d = time_query(s, "q8d", last_8d - 7 * day_ms, last_8d, min_iter, min_s);
    q.hour = time_query(s, "q24h", day_end - 3'600'000 + 1000, day_end, min_iter, min_s);
    q.latest = time_latest(s, min_iter, min_s);
    return q;
}

void print_queries(const char* name, const query_set& q, bool comma) {
    std::printf("\"%s\":{", name);
    print_timing("day_1000", q.day, true);
    print_timing("week_1000", q.week, true);
    print_timing("last_week_of_8d_1000", q.week_of_8d, true);
    print_timing("hour_1000", q.hour, true);
    print_timing("latest_4", q.latest, false);
    std::printf("}%s", comma ? "," : "");
}

void print_fill(const char* name, const fill_result& f, bool comma) {
    std::printf("\"%s\":{\"points\":%llu,\"s\":%.3f,\"points_per_s\":%.0f,\"stop_s\":%.3f,"
                "\"points_per_s_with_checkpoint\":%.0f}%s",
                name, static_cast<unsigned long long>(f.points), f.seconds, f.rate(), f.stop_seconds,
                f.rate_with_stop(), comma ? "," : "");
}

// Times s.stop() into f.stop_seconds.
void timed_stop(storage::lmdb_store& s, fill_result& f) {
    auto t = steady::now();
    s.stop();
    f.stop_seconds = seconds(steady::now() - t);
}

int run(const std::filesystem::path& dir, int fleet_devices, int fleet_readings, int min_iter, double min_s) {
    fill_result fleet;
    {
        storage::lmdb_options o;
        o.dir = dir / "fleet";
        storage::lmdb_store s(o);
        s.start();
        fleet = fill_fleet(s, fleet_devices, fleet_readings);
        timed_stop(s, fleet);
    }

    storage::lmdb_options o;
    o.dir = dir / "query";
    query_set journaled, checkpointed;
    fill_result charts;
    {
        auto deferred = o;
        deferred.checkpoint_interval = std::chrono::hours(1);
        deferred.checkpoint_points = std::size_t{1} << 30;
        storage::lmdb_store s(deferred);
        s.start();
        auto day = fill_series(s, "q24h", 86'400);
        auto week = fill_series(s, "q7d", 7 * 86'400);
        auto eight = fill_series(s, "q8d", 8 * 86'400);
        storage::metric_value mv[] = {{"temp", 21.5}, {"hum", 40}, {"pres", 1013}, {"volt", 3.3}};
        auto t = steady::now();
        for (int i = 0; i < 1000; ++i) append(s, {tenant, "q4m", t0_ms + i * 1000, mv});
        s.flush();
        charts = {day.points + week.points + eight.points + 4000,
                  day.seconds + week.seconds + eight.seconds + seconds(steady::now() - t), 0};
        journaled = run_queries(s, min_iter, min_s);
        timed_stop(s, charts);
    }
    {
        storage::lmdb_store s(o);
        s.start();
        checkpointed = run_queries(s, min_iter, min_s);
    }
    std::printf("{\"scenario\":\"query\",\"points_per_series\":%u,\"minute_slots\":%u,\"hour_slots\":%u,"
                "\"fleet_devices\":%d,\"fleet_readings\":%d,",
                o.points_per_series, o.minute_slots, o.hour_slots, fleet_devices, fleet_readings);
    print_fill("fill_fleet", fleet, true);
    print_fill("fill_charts", charts, true);
    print_queries("journaled", journaled, true);
    print_queries("checkpointed", checkpointed, false);
    std::printf("}\n");
    std::fflush(stdout);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::string dir;
    int fleet_devices = 1000, fleet_readings = 100, min_iter = 200;
    double min_s = 0.5;
    bool keep = false;
    CLI::App app{"pulsegate-querybench: telemetry store fill rate and query times (JSON on stdout)"};
    app.add_option("--dir", dir, "parent of the temporary store (default: the system temp directory)");
    app.add_option("--fleet-devices", fleet_devices, "fleet fill: devices (4 metrics each)")
        ->check(CLI::Range(1, 100000));
    app.add_option("--fleet-readings", fleet_readings, "fleet fill: readings per device")->check(CLI::Range(1, 100000));
    app.add_option("--min-iterations", min_iter, "per query, at least this many runs")->check(CLI::Range(1, 100000));
    app.add_option("--min-seconds", min_s, "per query, at least this long");
    app.add_flag("--keep", keep, "keep the store (its path goes to stderr)");
    CLI11_PARSE(app, argc, argv);

    std::filesystem::path parent = dir.empty() ? std::filesystem::temp_directory_path() : std::filesystem::path(dir);
    auto where = parent / ("pulsegate-querybench." + std::to_string(getpid()));
    int rc = 2;
    try {
        std::filesystem::create_directories(where);
        rc = run(where, fleet_devices, fleet_readings, min_iter, min_s);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "querybench: %s (store in %s)\n", e.what(), where.c_str());
    }
    if (keep) {
        std::fprintf(stderr, "querybench: store kept in %s\n", where.c_str());
    } else {
        std::error_code ec;
        std::filesystem::remove_all(where, ec);
    }
    return rc;
}
