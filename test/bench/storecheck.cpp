// pulsegate-storecheck: counts the telemetry points a stopped daemon left in
// its data directory, for test/bench/run.sh ("stored >= acknowledged").
//
// Opens `<data-dir>/telemetry` with storage::lmdb_store, which replays the
// journal as the daemon would at its next start (the only write it makes),
// and for every series of the tenant counts:
//   - raw points: query() over all time with no downsampling. Exact while
//     the raw ring still holds every point of the series (the bench writes a
//     few thousand per series; the ring has 100,000 slots);
//   - rollup points: the sum of the 1-minute rows' counts, which keep every
//     point of the last 7 days even after the raw ring wrapped.
// A series whose raw ring no longer covers all of it is counted from its
// rollups and reported in `series_from_rollups`.
//
// The daemon must not be running: LMDB allows it, but the journal would then
// be replayed twice. One JSON object on stdout; exit status 0, or 2 when the
// directory holds no environment or the store cannot be opened.

#include "storage/lmdb_store.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

namespace {

namespace storage = pulsegate::storage;

// The decoder's upper bound for "ts": 9999-12-31T23:59:59.999Z.
constexpr std::int64_t last_ms = 253402300799999;

int run(const std::filesystem::path& data_dir, const std::string& tenant) {
    const auto env = data_dir / "telemetry";
    if (!std::filesystem::exists(env / "data.mdb")) {
        std::fprintf(stderr, "storecheck: no LMDB environment in %s (is --data-dir the daemon's [storage] data_dir?)\n",
                     env.c_str());
        return 2;
    }
    storage::lmdb_options o;
    o.dir = env;
    storage::lmdb_store store(o);

    std::uint64_t raw_points = 0, rollup_points = 0, counted = 0, from_rollups = 0, errors = 0;
    std::int64_t first_ts = 0, last_ts = 0;
    const auto series = store.list_series(tenant);
    for (const auto& key : series) {
        storage::series_query q;
        q.series = key;
        q.from_ms = 0;
        q.to_ms = last_ms;
        q.max_points = std::size_t{1} << 40; // every point: no downsampling
        auto raw = store.query(q);
        auto rows = store.rollups(key, storage::resolution::minute, 0, last_ms);
        if (!raw || !rows) {
            ++errors;
            continue;
        }
        std::uint64_t in_rows = 0;
        for (const auto& r : *rows) in_rows += r.count;
        rollup_points += in_rows;
        if (raw->source == storage::resolution::raw) {
            raw_points += raw->points.size();
            counted += raw->points.size();
            if (!raw->points.empty()) {
                if (first_ts == 0 || raw->points.front().ts_ms < first_ts) first_ts = raw->points.front().ts_ms;
                last_ts = std::max(last_ts, raw->points.back().ts_ms);
            }
        } else {
            ++from_rollups;
            counted += in_rows;
        }
    }
    std::printf("{\"tenant\":\"%s\",\"series\":%zu,\"stored_points\":%llu,\"raw_points\":%llu,\"rollup_points\":%llu,"
                "\"series_from_rollups\":%llu,\"query_errors\":%llu,\"first_ts_ms\":%lld,\"last_ts_ms\":%lld}\n",
                tenant.c_str(), series.size(), static_cast<unsigned long long>(counted),
                static_cast<unsigned long long>(raw_points), static_cast<unsigned long long>(rollup_points),
                static_cast<unsigned long long>(from_rollups), static_cast<unsigned long long>(errors),
                static_cast<long long>(first_ts), static_cast<long long>(last_ts));
    return errors == 0 ? 0 : 2;
}

} // namespace

int main(int argc, char** argv) {
    std::string data_dir, tenant = "default";
    CLI::App app{"pulsegate-storecheck: telemetry points stored in a stopped daemon's data directory (JSON)"};
    app.add_option("--data-dir", data_dir, "the daemon's [storage] data_dir")->required();
    app.add_option("--tenant", tenant, "tenant whose series are counted");
    CLI11_PARSE(app, argc, argv);
    try {
        return run(data_dir, tenant);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "storecheck: cannot open the store: %s\n", e.what());
        return 2;
    }
}
