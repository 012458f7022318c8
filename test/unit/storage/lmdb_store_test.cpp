// lmdb_store: rings and rollups, source selection, downsampling and
// bucketed (mean/min/max) queries, journal
// replay and crash safety (a child process killed with SIGKILL), key/value
// tables, the commit handler, a full map, and readers running while the
// writer commits and checkpoints. Real LMDB files in temporary directories.

#include "storage/lmdb_store.hpp"

#include "common/thread.hpp"


#include <doctest/doctest.h>

#include "test/temp_dir.hpp"
#include "test/unit/storage/lmdb_format.hpp"

#include <sched.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <thread>

using namespace pulsegate::storage;

namespace {

namespace fs = std::filesystem;

using pulsegate::test::temp_dir;

lmdb_options small_options(const fs::path& dir) {
    lmdb_options o;
    o.dir = dir;
    o.initial_map_size = 4u << 20;
    o.points_per_series = 1000;
    o.minute_slots = 200;
    o.hour_slots = 50;
    return o;
}

// Records what the commit handler reports, tokens being shared_ptr<int>.
struct recorder {
    std::mutex m;
    std::vector<std::pair<int, commit_status>> seen;
    lmdb_store::commit_handler handler() {
        return [this](std::shared_ptr<void> token, commit_status s) {
            std::lock_guard l(m);
            seen.emplace_back(token ? *static_cast<int*>(token.get()) : -1, s);
        };
    }
    std::vector<std::pair<int, commit_status>> take() {
        std::lock_guard l(m);
        return std::exchange(seen, {});
    }
};

// Kills and reaps a forked child unless it was reaped already, so a failed
// check never leaves a writer running.
class child_guard {
public:
    explicit child_guard(pid_t pid) : pid_(pid) {}
    ~child_guard() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    child_guard(const child_guard&) = delete;
    child_guard& operator=(const child_guard&) = delete;
    int wait() {
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return status;
    }

private:
    pid_t pid_;
};

pid_t fork_child() {
    const pid_t pid = ::fork();
    if (pid == 0)
        ::prctl(PR_SET_PDEATHSIG, SIGKILL); // dies with the test
    return pid;
}

std::shared_ptr<void> tok(int i) { return std::make_shared<int>(i); }

append_result add(lmdb_store& s, std::string_view tenant, std::string_view device, std::string_view metric,
                  std::int64_t ts, double value, std::shared_ptr<void> token = {}) {
    const metric_value mv[] = {{metric, value}};
    return s.append(reading{tenant, device, ts, mv}, std::move(token));
}

query_result must_query(const lmdb_store& s, const series_key& k, std::int64_t from, std::int64_t to,
                        std::size_t max_points = 1'000'000) {
    auto r = s.query(series_query{k, from, to, max_points});
    REQUIRE(r.has_value());
    return *r;
}

std::vector<std::int64_t> times(const std::vector<point>& pts) {
    std::vector<std::int64_t> t;
    for (const auto& p : pts)
        t.push_back(p.ts_ms);
    return t;
}

bool in_time_order(const std::vector<point>& pts) {
    return std::is_sorted(pts.begin(), pts.end(), [](const point& a, const point& b) { return a.ts_ms < b.ts_ms; });
}

const series_key k_temp{"t1", "dev", "temp"};

struct sample {
    std::int64_t ts;
    double value;
};

bucket_result must_buckets(const lmdb_store& s, const series_key& k, std::int64_t from, std::int64_t to,
                           std::size_t max_points) {
    auto r = s.query_buckets(series_query{k, from, to, max_points});
    REQUIRE(r.has_value());
    return *r;
}

// What query_buckets() promises, from the points written (positive times, in
// time order): bucket_ms = ceil((to - from + 1) / max_points) rounded up to
// the resolution `res`; buckets from `from` rounded down to `res`; a point
// counts when the rollup row holding it (itself when res is 1) overlaps
// [from, to], in the bucket where that row starts.
std::int64_t expected_width(std::int64_t from, std::int64_t to, std::size_t max_points, std::int64_t res) {
    const auto m = static_cast<std::int64_t>(max_points);
    const std::int64_t w = (to - from + 1 + m - 1) / m;
    return (w + res - 1) / res * res;
}

std::vector<bucket> expected_buckets(const std::vector<sample>& pts, std::int64_t from, std::int64_t to,
                                     std::size_t max_points, std::int64_t res) {
    const std::int64_t width = expected_width(from, to, max_points, res);
    const std::int64_t start = from / res * res;
    std::map<std::int64_t, bucket> by_start;
    for (const auto& p : pts) {
        const std::int64_t row = p.ts / res * res;
        if (row < start || row > to)
            continue;
        const std::int64_t b = start + (row - start) / width * width;
        auto [it, fresh] = by_start.try_emplace(b, bucket{b, 0, p.value, p.value, 0});
        it->second.min = std::min(it->second.min, p.value);
        it->second.max = std::max(it->second.max, p.value);
        it->second.mean += p.value; // the sum until the end
        ++it->second.count;
    }
    std::vector<bucket> out;
    for (auto& [ts, b] : by_start) {
        b.mean /= static_cast<double>(b.count);
        out.push_back(b);
    }
    return out;
}

// The points of [from, to] as query_buckets() passes them through.
std::vector<bucket> as_raw(const std::vector<sample>& pts, std::int64_t from, std::int64_t to) {
    std::vector<bucket> out;
    for (const auto& p : pts)
        if (p.ts >= from && p.ts <= to)
            out.push_back({p.ts, p.value, p.value, p.value, 1});
    return out;
}

} // namespace

TEST_CASE("the raw ring keeps the newest points in order when it wraps around") {
    struct row {
        std::uint32_t cap;
        int points;
        std::size_t checkpoint_points; // checkpoints while writing, at odd places
    };
    const row rows[] = {
        {10, 35, 1u << 20}, {10, 35, 3}, {10, 9, 4},   {100, 35, 1u << 20}, // one block, B does not divide
        {100, 250, 7},      {130, 300, 64}, {130, 129, 1}, {64, 200, 13},   // several blocks, the last one partial
    };
    for (const auto& r : rows) {
        CAPTURE(r.cap);
        CAPTURE(r.points);
        CAPTURE(r.checkpoint_points);
        temp_dir dir;
        auto o = small_options(dir.path);
        o.points_per_series = r.cap;
        o.checkpoint_points = r.checkpoint_points;
        o.checkpoint_interval = std::chrono::hours(1);
        const int first = std::max(0, r.points - static_cast<int>(r.cap));
        std::vector<std::int64_t> want;
        for (int i = first; i < r.points; ++i)
            want.push_back(1000 + i * 10);
        auto check = [&](const lmdb_store& s) {
            auto q = must_query(s, k_temp, want.front(), 1'000'000);
            CHECK(q.source == resolution::raw);
            CHECK(times(q.points) == want);
            for (const auto& p : q.points)
                CHECK(p.value == doctest::Approx(static_cast<double>(p.ts_ms) / 2));
        };
        {
            lmdb_store s(o);
            s.start();
            for (int i = 0; i < r.points; ++i) {
                REQUIRE(add(s, "t1", "dev", "temp", 1000 + i * 10, (1000 + i * 10) / 2.0) == append_result::queued);
                if (i % 4 == 0)
                    s.flush(); // several commits, so pending and ring points mix
            }
            s.flush();
            check(s); // ring + journaled points
            s.stop();
            check(s); // all in the ring
        }
        lmdb_store reopened(o);
        check(reopened);
    }
}

TEST_CASE("rollups: min, max, sum, count and last per minute and per hour") {
    // (ts, value) spanning three hours and several minutes inside them.
    const std::vector<std::pair<std::int64_t, double>> pts = {
        {0, 5},           {1'000, -2},       {59'999, 7},       // minute 0
        {60'000, 1},      {119'000, 3},                         // minute 1
        {600'000, 10},                                          // minute 10
        {3'600'000, 4},   {3'630'000, 8},    {3'659'999, 6},    // hour 1, minute 60
        {3'720'000, -1},                                        // minute 62
        {7'300'000, 2.5}, {10'799'999, 9.5},                    // hour 2: minutes 121, 179
    };
    const std::vector<rollup_row> want_minutes = {
        {0, -2, 7, 10, 3, 7},           {60'000, 1, 3, 4, 2, 3},         {600'000, 10, 10, 10, 1, 10},
        {3'600'000, 4, 8, 18, 3, 6},    {3'720'000, -1, -1, -1, 1, -1},  {7'260'000, 2.5, 2.5, 2.5, 1, 2.5},
        {10'740'000, 9.5, 9.5, 9.5, 1, 9.5},
    };
    const std::vector<rollup_row> want_hours = {
        {0, -2, 10, 24, 6, 10},
        {3'600'000, -1, 8, 17, 4, -1},
        {7'200'000, 2.5, 9.5, 12, 2, 9.5},
    };
    for (std::size_t checkpoint_points : {std::size_t{1} << 20, std::size_t{1}, std::size_t{4}}) {
        CAPTURE(checkpoint_points);
        temp_dir dir;
        auto o = small_options(dir.path);
        o.checkpoint_points = checkpoint_points;
        o.checkpoint_interval = std::chrono::hours(1);
        auto check = [&](const lmdb_store& s) {
            auto m = s.rollups(k_temp, resolution::minute, 0, 20'000'000);
            REQUIRE(m.has_value());
            CHECK(*m == want_minutes);
            auto h = s.rollups(k_temp, resolution::hour, 0, 20'000'000);
            REQUIRE(h.has_value());
            CHECK(*h == want_hours);
            // A range inside a bucket still returns the bucket overlapping it.
            auto one = s.rollups(k_temp, resolution::hour, 3'700'000, 3'700'001);
            REQUIRE(one.has_value());
            REQUIRE(one->size() == 1);
            CHECK(one->front().start_ms == 3'600'000);
        };
        {
            lmdb_store s(o);
            s.start();
            for (const auto& [ts, v] : pts) {
                add(s, "t1", "dev", "temp", ts, v);
                s.flush();
            }
            check(s);
            s.stop();
            check(s);
        }
        lmdb_store reopened(o);
        check(reopened);
        CHECK_FALSE(reopened.rollups(k_temp, resolution::raw, 0, 1).has_value());
    }
}

TEST_CASE("downsampling keeps the global minimum and maximum, in time order") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.points_per_series = 20'000;
    lmdb_store s(o);
    s.start();
    for (int i = 0; i < 10'000; ++i) {
        const double v = i == 5'000 ? 100.0 : i == 7'777 ? -50.0 : 1.0 + (i % 7) * 0.01;
        add(s, "t1", "dev", "temp", 1'000'000 + i * 100LL, v);
    }
    s.flush();
    for (bool checkpointed : {false, true}) {
        CAPTURE(checkpointed);
        if (checkpointed)
            s.stop();
        auto q = must_query(s, k_temp, 1'000'000, 1'000'000 + 10'000 * 100LL, 1000);
        CHECK(q.source == resolution::raw);
        CHECK(q.points.size() <= 1000);
        CHECK(q.points.size() >= 900);
        CHECK(in_time_order(q.points));
        auto has = [&](std::int64_t ts, double v) {
            return std::any_of(q.points.begin(), q.points.end(),
                               [&](const point& p) { return p.ts_ms == ts && p.value == v; });
        };
        CHECK(has(1'000'000 + 5'000 * 100LL, 100.0));
        CHECK(has(1'000'000 + 7'777 * 100LL, -50.0));
        // Under the limit: every point.
        auto all = must_query(s, k_temp, 1'000'000, 1'000'000 + 99 * 100LL, 1000);
        CHECK(all.points.size() == 100);
    }
}

TEST_CASE("the source is the finest ring that covers the range within 20 x max_points") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.points_per_series = 100;
    o.minute_slots = 1000;
    o.hour_slots = 100;
    lmdb_store s(o);
    s.start();
    // One point a second for three hours: the raw ring holds the last 100 s.
    const std::int64_t t0 = 36'000'000, n = 3 * 3600;
    for (std::int64_t i = 0; i < n; ++i)
        add(s, "t1", "dev", "temp", t0 + i * 1000, static_cast<double>(i));
    s.flush();
    const std::int64_t last = t0 + (n - 1) * 1000;
    struct row {
        const char* what;
        std::int64_t from, to;
        std::size_t max_points;
        resolution want;
    };
    const row rows[] = {
        {"last 50 s", last - 50'000, last, 1000, resolution::raw},
        {"last 99 s, exactly the ring", last - 99'000, last, 1000, resolution::raw},
        {"raw covers but holds more than 20 x 2", last - 99'000, last, 2, resolution::minute},
        {"older than the raw ring", last - 200'000, last, 1000, resolution::minute},
        {"three hours in minutes", t0, last, 1000, resolution::minute},
        {"three hours, 180 minutes > 20 x 4", t0, last, 4, resolution::hour},
        {"before the first point", t0 - 10'000'000, last, 1000, resolution::minute},
    };
    for (bool checkpointed : {false, true}) {
        if (checkpointed)
            s.stop();
        for (const auto& r : rows) {
            CAPTURE(r.what);
            CAPTURE(checkpointed);
            auto q = must_query(s, k_temp, r.from, r.to, r.max_points);
            CHECK(q.source == r.want);
            CHECK(q.points.size() <= r.max_points);
            CHECK(in_time_order(q.points));
            CHECK_FALSE(q.points.empty());
        }
    }
    // Minute rows contribute (start, min) and (start, max).
    auto q = must_query(s, k_temp, t0, t0 + 119'999, 1000);
    CHECK(q.source == resolution::minute);
    const std::vector<point> want = {{t0, 0}, {t0, 59}, {t0 + 60'000, 60}, {t0 + 60'000, 119}};
    REQUIRE(q.points.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
        CHECK(q.points[i].ts_ms == want[i].ts_ms);
        CHECK(q.points[i].value == want[i].value);
    }
}

TEST_CASE("query arguments") {
    temp_dir dir;
    lmdb_store s(small_options(dir.path));
    s.start();
    add(s, "t1", "dev", "temp", 10, 1);
    s.flush();
    auto bad_range = s.query(series_query{k_temp, 20, 10, 100});
    REQUIRE_FALSE(bad_range.has_value());
    CHECK(bad_range.error() == boost::system::errc::invalid_argument);
    auto bad_points = s.query(series_query{k_temp, 0, 10, 1});
    REQUIRE_FALSE(bad_points.has_value());
    CHECK(bad_points.error() == boost::system::errc::invalid_argument);
    auto unknown = s.query(series_query{series_key{"t1", "dev", "nope"}, 0, 100, 100});
    REQUIRE(unknown.has_value());
    CHECK(unknown->points.empty());
    auto with_nul = s.query(series_query{series_key{"t1", std::string("de\0v", 4), "temp"}, 0, 100, 100});
    REQUIRE(with_nul.has_value());
    CHECK(with_nul->points.empty());
}

// Values are small integers so that every sum is exact whatever the order
// of the additions: means compare with ==.

TEST_CASE("query_buckets passes a range of at most max_points raw points through") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.checkpoint_interval = std::chrono::hours(1);
    lmdb_store s(o);
    s.start();
    std::vector<sample> pts;
    for (int i = 0; i < 10; ++i)
        pts.push_back({5'000 + i * 1'000LL, static_cast<double>(i * i - 20)});
    for (const auto& p : pts)
        add(s, "t1", "dev", "temp", p.ts, p.value);
    s.flush();
    for (bool checkpointed : {false, true}) {
        CAPTURE(checkpointed);
        if (checkpointed)
            s.stop();
        auto r = must_buckets(s, k_temp, 0, 100'000, 100);
        CHECK(r.source == resolution::raw);
        CHECK(r.bucket_ms == 0);
        CHECK(r.buckets == as_raw(pts, 0, 100'000));
        // Exactly max_points points: still passed through.
        auto exact = must_buckets(s, k_temp, 6'000, 9'000, 4);
        CHECK(exact.bucket_ms == 0);
        CHECK(exact.buckets == as_raw(pts, 6'000, 9'000));
        // One more than max_points: bucketed, nothing lost.
        auto over = must_buckets(s, k_temp, 6'000, 10'000, 4);
        CHECK(over.source == resolution::raw);
        CHECK(over.bucket_ms == expected_width(6'000, 10'000, 4, 1));
        CHECK(over.buckets == expected_buckets(pts, 6'000, 10'000, 4, 1));
        CHECK(over.buckets.size() <= 4);
    }
}

TEST_CASE("query_buckets folds many raw points into buckets with exact mean, min, max and count") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.points_per_series = 20'000;
    o.checkpoint_interval = std::chrono::hours(1);
    lmdb_store s(o);
    s.start();
    const std::int64_t t0 = 1'000'000;
    std::vector<sample> pts;
    for (int i = 0; i < 10'000; ++i) {
        const double v = i == 5'000 ? 1'000.0 : i == 7'777 ? -900.0 : static_cast<double>((i * 37) % 101 - 50);
        pts.push_back({t0 + i * 100LL, v});
    }
    for (const auto& p : pts)
        add(s, "t1", "dev", "temp", p.ts, p.value);
    s.flush();
    struct row {
        std::int64_t from, to;
        std::size_t max_points;
    };
    const row rows[] = {
        {t0, t0 + 999'999, 500},                // the whole series, 2000 ms buckets
        {t0 + 50, t0 + 777'777, 1000},          // not aligned to the points
        {t0 - 5'000'000, t0 + 2'000'000, 1000}, // wider than the data: empty buckets omitted
        {t0 + 499'850, t0 + 500'150, 2},        // three points: the spike and its neighbour, then one
    };
    for (bool checkpointed : {false, true}) {
        if (checkpointed)
            s.stop();
        for (const auto& r : rows) {
            CAPTURE(checkpointed);
            CAPTURE(r.from);
            CAPTURE(r.max_points);
            auto got = must_buckets(s, k_temp, r.from, r.to, r.max_points);
            CHECK(got.source == resolution::raw);
            CHECK(got.bucket_ms == expected_width(r.from, r.to, r.max_points, 1));
            CHECK(got.buckets.size() <= r.max_points);
            CHECK(got.buckets == expected_buckets(pts, r.from, r.to, r.max_points, 1));
        }
        // The spike and the dip survive as a bucket's max and min.
        auto all = must_buckets(s, k_temp, t0, t0 + 999'999, 500);
        REQUIRE_FALSE(all.buckets.empty());
        auto hi = std::max_element(all.buckets.begin(), all.buckets.end(),
                                   [](const bucket& a, const bucket& b) { return a.max < b.max; });
        auto lo = std::min_element(all.buckets.begin(), all.buckets.end(),
                                   [](const bucket& a, const bucket& b) { return a.min < b.min; });
        CHECK(hi->max == 1'000.0);
        CHECK(lo->min == -900.0);
    }
}

TEST_CASE("query_buckets reads minute and hour rows when the raw ring does not cover the range") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.points_per_series = 100;
    o.minute_slots = 1000;
    o.hour_slots = 100;
    o.checkpoint_interval = std::chrono::hours(1);
    // Three hours; minute m holds m % 5 + 1 points, so a mean of minute means
    // is not the mean of the points.
    const std::int64_t t0 = 36'000'000;
    std::vector<sample> pts;
    for (int m = 0; m < 180; ++m)
        for (int j = 0; j <= m % 5; ++j)
            pts.push_back({t0 + m * 60'000LL + j * 1'000LL, static_cast<double>(m * 10 + j * j * 7)});
    const std::int64_t last = pts.back().ts;
    struct row {
        const char* what;
        std::int64_t from, to;
        std::size_t max_points;
        resolution want;
        std::int64_t res;
    };
    const row rows[] = {
        {"minutes, 4-minute buckets", t0 + 30'000, last, 50, resolution::minute, 60'000},
        {"one minute per bucket", t0 + 60'000, t0 + 20 * 60'000, 1000, resolution::minute, 60'000},
        {"180 minutes > 20 x 4: hours", t0 + 30'000, last, 4, resolution::hour, 3'600'000},
    };
    auto check = [&](const lmdb_store& s) {
        for (const auto& r : rows) {
            CAPTURE(r.what);
            auto got = must_buckets(s, k_temp, r.from, r.to, r.max_points);
            CHECK(got.source == r.want);
            CHECK(got.bucket_ms == expected_width(r.from, r.to, r.max_points, r.res));
            CHECK(got.bucket_ms % r.res == 0);
            CHECK(got.buckets.size() <= r.max_points);
            CHECK(got.buckets == expected_buckets(pts, r.from, r.to, r.max_points, r.res));
        }
        // The first row overlapping from_ms starts before it, and so does its bucket.
        auto first = must_buckets(s, k_temp, t0 + 30'000, last, 50);
        REQUIRE_FALSE(first.buckets.empty());
        CHECK(first.buckets.front().ts_ms == t0);
        // Sums and counts were combined: the first 4-minute bucket holds 1, 2,
        // 3 and 4 points summing to 0, 27, 95 and 218; the mean of the minute
        // means would be about 24.9.
        const auto& b = first.buckets.front();
        CHECK(b.count == 10);
        CHECK(b.mean == 34.0);
    };
    {
        lmdb_store s(o);
        s.start();
        for (const auto& p : pts)
            add(s, "t1", "dev", "temp", p.ts, p.value);
        s.flush();
        check(s); // rollup rows in memory only
        s.stop();
        check(s); // in the rings
    }
    lmdb_store reopened(o);
    check(reopened);
}

TEST_CASE("query_buckets sees journaled points next to checkpointed ones") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.points_per_series = 2'000;
    o.checkpoint_interval = std::chrono::hours(1);
    const std::int64_t t0 = 36'000'000;
    std::vector<sample> pts;
    for (int i = 0; i < 1'000; ++i)
        pts.push_back({t0 + i * 700LL, static_cast<double>((i * 13) % 29)});
    const std::int64_t last = pts.back().ts;
    {
        lmdb_store s(o);
        s.start();
        for (int i = 0; i < 500; ++i)
            add(s, "t1", "dev", "temp", pts[i].ts, pts[i].value);
        s.stop(); // checkpointed into the rings
    }
    lmdb_store s(o);
    s.start();
    for (int i = 500; i < 1'000; ++i)
        add(s, "t1", "dev", "temp", pts[i].ts, pts[i].value);
    s.flush();
    REQUIRE(s.stats().checkpoints == 0); // the second half is only in the journal

    auto all = must_buckets(s, k_temp, t0, last, 1'000);
    CHECK(all.bucket_ms == 0);
    CHECK(all.buckets == as_raw(pts, t0, last));
    auto journal_only = must_buckets(s, k_temp, pts[600].ts, last, 1'000);
    CHECK(journal_only.buckets == as_raw(pts, pts[600].ts, last));
    // Buckets across the boundary: raw, then minute rows (the minute of the
    // boundary is in the ring and continued in memory: counted once).
    auto raw = must_buckets(s, k_temp, t0, last, 60);
    CHECK(raw.source == resolution::raw);
    CHECK(raw.buckets == expected_buckets(pts, t0, last, 60, 1));
    auto minutes = must_buckets(s, k_temp, t0, last, 2);
    CHECK(minutes.source == resolution::minute);
    CHECK(minutes.buckets == expected_buckets(pts, t0, last, 2, 60'000));
    std::uint64_t n = 0;
    for (const auto& b : minutes.buckets)
        n += b.count;
    CHECK(n == 1'000);
}

TEST_CASE("query_buckets arguments: the errors of query(), unknown series empty") {
    temp_dir dir;
    lmdb_store s(small_options(dir.path));
    s.start();
    for (int i = 0; i < 3; ++i)
        add(s, "t1", "dev", "temp", 10 + i, 1 + i);
    s.flush();
    for (const auto& q : {series_query{k_temp, 20, 10, 100}, series_query{k_temp, 0, 10, 1},
                          series_query{k_temp, 0, 10, 0}}) {
        auto b = s.query_buckets(q);
        auto p = s.query(q);
        REQUIRE_FALSE(b.has_value());
        REQUIRE_FALSE(p.has_value());
        CHECK(b.error() == p.error());
        CHECK(b.error() == boost::system::errc::invalid_argument);
    }
    for (const auto& k : {series_key{"t1", "dev", "nope"}, series_key{"t2", "dev", "temp"},
                          series_key{"t1", std::string("de\0v", 4), "temp"}}) {
        auto r = s.query_buckets(series_query{k, 0, 100, 100});
        REQUIRE(r.has_value());
        CHECK(r->buckets.empty());
        CHECK(r->bucket_ms == 0);
    }
    // Outside the data: nothing, whatever the source.
    CHECK(must_buckets(s, k_temp, 100, 200, 2).buckets.empty());
    // The whole int64 range in two buckets: no overflow; the width is
    // 2^63, reported saturated.
    constexpr auto lo = std::numeric_limits<std::int64_t>::min();
    constexpr auto hi = std::numeric_limits<std::int64_t>::max();
    auto wide = must_buckets(s, k_temp, lo, hi, 2);
    CHECK(wide.source == resolution::raw);
    CHECK(wide.bucket_ms == hi);
    REQUIRE(wide.buckets.size() == 1);
    CHECK(wide.buckets.front() == bucket{0, 2, 1, 3, 3});
    auto wide_passthrough = must_buckets(s, k_temp, lo, hi, 3);
    CHECK(wide_passthrough.bucket_ms == 0);
    CHECK(wide_passthrough.buckets.size() == 3);
}

TEST_CASE("series are listed in key order, per tenant and per device") {
    temp_dir dir;
    lmdb_store s(small_options(dir.path));
    s.start();
    const std::vector<series_key> keys = {
        {"t", "b", "z"}, {"t", "a", "y"}, {"t2", "a", "x"}, {"t", "b", "a"}, {"t", "a\xff", "m"},
        {"t", "a", "x"}, {"u", "a", "a"}, {"", "x", "y"},   {"t", "ab", "c"},
    };
    for (const auto& k : keys)
        add(s, k.tenant, k.device, k.metric, 1, 1);
    s.flush();
    const std::vector<series_key> want_t = {
        {"t", "a", "x"}, {"t", "a", "y"}, {"t", "ab", "c"}, {"t", "a\xff", "m"}, {"t", "b", "a"}, {"t", "b", "z"},
    };
    CHECK(s.list_series("t") == want_t);
    // The same order as series_key's.
    auto sorted = keys;
    std::sort(sorted.begin(), sorted.end());
    std::vector<series_key> all;
    for (const char* t : {"", "t", "t2", "u"})
        for (auto& k : s.list_series(t))
            all.push_back(k);
    CHECK(all == sorted);
    CHECK(s.list_series("t", "a") == std::vector<series_key>{{"t", "a", "x"}, {"t", "a", "y"}});
    CHECK(s.list_series("t", "b") == std::vector<series_key>{{"t", "b", "a"}, {"t", "b", "z"}});
    CHECK(s.list_series("t2") == std::vector<series_key>{{"t2", "a", "x"}});
    CHECK(s.list_series("nobody").empty());
    CHECK(s.stats().series == keys.size());
}

TEST_CASE("series ids past 255 and 65535 keep their data across a reopen") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.points_per_series = 4;
    o.minute_slots = 2;
    o.hour_slots = 2;
    o.initial_map_size = 64u << 20;
    constexpr int n = 66'000;
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i)
        names.push_back("m" + std::to_string(i));
    {
        lmdb_store s(o);
        s.start();
        std::vector<metric_value> mv;
        for (int i = 0; i < n; ++i)
            mv.push_back({names[static_cast<std::size_t>(i)], static_cast<double>(i)});
        s.append(reading{"t", "d", 5, mv}, {});
        s.flush();
        CHECK(s.stats().series == n);
    }
    lmdb_store s(o);
    CHECK(s.stats().series == n);
    CHECK(s.list_series("t", "d").size() == n);
    for (int i : {0, 1, 255, 256, 257, 65'534, 65'535, 65'536, 65'537, n - 1}) {
        CAPTURE(i);
        auto q = must_query(s, series_key{"t", "d", names[static_cast<std::size_t>(i)]}, 0, 10);
        REQUIRE(q.points.size() == 1);
        CHECK(q.points[0].value == i);
    }
    // New series after a reopen continue the ids.
    s.start();
    add(s, "t", "d", "after", 6, 42);
    s.flush();
    CHECK(must_query(s, series_key{"t", "d", "after"}, 0, 10).points.size() == 1);
    CHECK(s.stats().series == n + 1);
}

TEST_CASE("out-of-order points are dropped, duplicates ignored, both counted and committed") {
    temp_dir dir;
    lmdb_store s(small_options(dir.path));
    recorder rec;
    s.set_commit_handler(rec.handler());
    s.start();
    struct row {
        std::int64_t ts;
        double value;
    };
    const row in[] = {{10, 1}, {20, 2}, {15, 9}, {20, 9}, {30, 3}, {5, 9}, {30, 9}, {31, 4}};
    int i = 0;
    for (const auto& r : in)
        add(s, "t1", "dev", "temp", r.ts, r.value, tok(i++));
    s.flush();
    auto q = must_query(s, k_temp, 0, 100);
    CHECK(times(q.points) == std::vector<std::int64_t>{10, 20, 30, 31});
    CHECK(q.points[1].value == 2);
    CHECK(q.points[2].value == 3);
    const auto st = s.stats();
    CHECK(st.points_out_of_order == 2);
    CHECK(st.points_duplicate == 2);
    CHECK(st.points_written == 4);
    auto seen = rec.take();
    REQUIRE(seen.size() == 8);
    for (int k = 0; k < 8; ++k) {
        CHECK(seen[static_cast<std::size_t>(k)].first == k);
        CHECK(seen[static_cast<std::size_t>(k)].second == commit_status::committed);
    }
    // The order survives a restart: the newest timestamp is still 31.
    s.stop();
    lmdb_store again(small_options(dir.path));
    again.start();
    add(again, "t1", "dev", "temp", 31, 0);
    add(again, "t1", "dev", "temp", 25, 0);
    again.flush();
    CHECK(again.stats().points_duplicate == 1);
    CHECK(again.stats().points_out_of_order == 1);
}

TEST_CASE("names with a NUL byte are rejected and counted") {
    temp_dir dir;
    lmdb_store s(small_options(dir.path));
    s.start();
    const std::string bad("te\0mp", 5);
    const metric_value mv[] = {{bad, 1}, {"ok", 2}};
    s.append(reading{"t1", "dev", 10, mv}, {});
    add(s, std::string_view("t\0", 2), "dev", "x", 10, 1);
    s.flush();
    CHECK(s.stats().points_rejected == 2);
    CHECK(s.stats().points_written == 1);
    CHECK(s.list_series("t1") == std::vector<series_key>{{"t1", "dev", "ok"}});
}

TEST_CASE("latest values per device, in metric order, across a reopen") {
    temp_dir dir;
    auto o = small_options(dir.path);
    {
        lmdb_store s(o);
        s.start();
        const metric_value a[] = {{"temp", 20.5}, {"hum", 40}, {"on", 1}};
        const metric_value b[] = {{"temp", 21.5}, {"on", 0}};
        s.append(reading{"t1", "dev", 100, a}, {});
        s.append(reading{"t1", "dev", 200, b}, {});
        add(s, "t1", "dev2", "temp", 300, 99);
        add(s, "t1", "de", "temp", 300, 98);
        s.flush();
        auto check = [](const lmdb_store& st) {
            auto l = st.latest("t1", "dev");
            REQUIRE(l.size() == 3);
            CHECK(l[0].metric == "hum");
            CHECK(l[0].ts_ms == 100);
            CHECK(l[0].value == 40);
            CHECK(l[1].metric == "on");
            CHECK(l[1].ts_ms == 200);
            CHECK(l[1].value == 0);
            CHECK(l[2].metric == "temp");
            CHECK(l[2].ts_ms == 200);
            CHECK(l[2].value == 21.5);
            CHECK(st.latest("t1", "nobody").empty());
            CHECK(st.latest("t2", "dev").empty());
        };
        check(s);
        s.stop();
        check(s);
        lmdb_store again(o);
        check(again);
    }
}

TEST_CASE("journaled points survive a crash before any checkpoint, exactly once") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.checkpoint_interval = std::chrono::hours(1);
    o.checkpoint_points = 1u << 30;
    o.points_per_series = 50;
    const pid_t child = fork_child();
    REQUIRE(child >= 0);
    if (child == 0) {
        // Commit, then die without stop(): no checkpoint, no destructor.
        lmdb_store s(o);
        s.start();
        for (int i = 0; i < 120; ++i) {
            add(s, "t1", "dev", "temp", 1000LL * i, i);
            if (i % 10 == 0)
                s.flush();
        }
        s.put(kv_table::sessions, "c1", "state", {});
        s.flush();
        ::_exit(s.stats().checkpoints == 0 ? 0 : 3);
    }
    const int status = child_guard(child).wait();
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    for (int round = 0; round < 2; ++round) {
        CAPTURE(round);
        lmdb_store s(o); // replays, then checkpoints
        auto q = must_query(s, k_temp, 70'000, 200'000);
        CHECK(q.source == resolution::raw);
        REQUIRE(q.points.size() == 50);
        for (std::size_t i = 0; i < 50; ++i) {
            CHECK(q.points[i].ts_ms == 1000LL * static_cast<std::int64_t>(70 + i));
            CHECK(q.points[i].value == static_cast<double>(70 + i));
        }
        auto m = s.rollups(k_temp, resolution::minute, 0, 200'000);
        REQUIRE(m.has_value());
        REQUIRE(m->size() == 2);
        CHECK((*m)[0] == rollup_row{0, 0, 59, 59 * 60 / 2, 60, 59});
        CHECK((*m)[1] == rollup_row{60'000, 60, 119, (60 + 119) * 60 / 2, 60, 119});
        auto l = s.latest("t1", "dev");
        REQUIRE(l.size() == 1);
        CHECK(l[0].ts_ms == 119'000);
        std::vector<std::string> keys;
        s.scan(kv_table::sessions, [&](std::string_view k, std::string_view) { keys.emplace_back(k); });
        CHECK(keys == std::vector<std::string>{"c1"});
    }
}

TEST_CASE("kill -9 while committing and checkpointing loses no committed point and stores none twice") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.checkpoint_points = 40; // checkpoints all the time
    o.checkpoint_interval = std::chrono::milliseconds(5);
    o.checkpoint_series_per_txn = 1; // a kill may fall between the two series' transactions
    o.points_per_series = 100'000;
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t child = fork_child();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(fds[0]);
        lmdb_store s(o);
        const int out = fds[1];
        s.set_commit_handler([out](std::shared_ptr<void> t, commit_status st) {
            if (!t || st != commit_status::committed)
                ::_exit(4);
            const std::int64_t i = *static_cast<std::int64_t*>(t.get());
            if (::write(out, &i, sizeof i) != sizeof i)
                ::_exit(5);
        });
        s.start();
        for (std::int64_t i = 1;; ++i) {
            const metric_value mv[] = {{"a", static_cast<double>(i)}, {"b", static_cast<double>(-i)}};
            while (s.append(reading{"t1", "dev", i * 1000, mv}, std::make_shared<std::int64_t>(i)) !=
                   append_result::queued)
                std::this_thread::yield();
            if (i % 50 == 0)
                s.flush();
        }
    }
    child_guard guard(child);
    ::close(fds[1]);
    std::int64_t acked = 0, v = 0;
    bool in_order = true;
    while (acked < 3000 && ::read(fds[0], &v, sizeof v) == sizeof v) {
        in_order = in_order && v == acked + 1; // acknowledged in append order
        acked = v;
    }
    ::kill(child, SIGKILL);
    const int status = guard.wait();
    CHECK(WIFSIGNALED(status)); // killed, not failed
    CHECK(in_order);
    // Acknowledgements written before the kill and not read yet count too.
    while (::read(fds[0], &v, sizeof v) == sizeof v)
        acked = v;
    ::close(fds[0]);
    REQUIRE(acked >= 3000);
    lmdb_store s(o);
    auto qa = must_query(s, series_key{"t1", "dev", "a"}, 0, 1'000'000'000);
    auto qb = must_query(s, series_key{"t1", "dev", "b"}, 0, 1'000'000'000);
    REQUIRE(qa.points.size() >= static_cast<std::size_t>(acked));
    CHECK(qa.points.size() == qb.points.size()); // one reading, one commit
    bool exact = true;
    for (std::size_t i = 0; i < qa.points.size(); ++i) {
        const auto n = static_cast<std::int64_t>(i + 1);
        exact = exact && qa.points[i].ts_ms == n * 1000 && qa.points[i].value == static_cast<double>(n) &&
                qb.points[i].ts_ms == n * 1000 && qb.points[i].value == static_cast<double>(-n);
    }
    CHECK(exact);
    auto m = s.rollups(series_key{"t1", "dev", "a"}, resolution::minute, 0, 1'000'000'000);
    REQUIRE(m.has_value());
    std::uint64_t count = 0;
    for (const auto& r : *m)
        count += r.count;
    CHECK(count == qa.points.size());
}

TEST_CASE("key/value tables: put, overwrite, erase, scan in key order, across a reopen") {
    temp_dir dir;
    auto o = small_options(dir.path);
    recorder rec;
    {
        lmdb_store s(o);
        s.set_commit_handler(rec.handler());
        s.start();
        s.put(kv_table::sessions, "b", "2", tok(0));
        s.put(kv_table::sessions, "a", "1", tok(1));
        s.put(kv_table::sessions, "c", "3", tok(2));
        s.put(kv_table::retained, "a", "other table", tok(3));
        s.put(kv_table::sessions, "b", "22", tok(4));
        s.erase(kv_table::sessions, "c", tok(5));
        s.erase(kv_table::sessions, "never", tok(6));
        s.put(kv_table::messages, std::string(600, 'k'), "key too long", tok(7));
        s.put(kv_table::messages, "", "empty key", tok(8));
        s.put(kv_table::session_messages, std::string("\x00\x01", 2), std::string(100'000, 'v'), tok(9));
        s.flush();
        auto seen = rec.take();
        REQUIRE(seen.size() == 10);
        for (int i = 0; i < 10; ++i) {
            CAPTURE(i);
            CHECK(seen[static_cast<std::size_t>(i)].first == i);
            CHECK(seen[static_cast<std::size_t>(i)].second ==
                  (i == 7 || i == 8 ? commit_status::storage_full : commit_status::committed));
        }
    }
    lmdb_store s(o);
    auto dump = [&](kv_table t) {
        std::vector<std::pair<std::string, std::string>> out;
        s.scan(t, [&](std::string_view k, std::string_view v) { out.emplace_back(k, v); });
        return out;
    };
    using kvs = std::vector<std::pair<std::string, std::string>>;
    CHECK(dump(kv_table::sessions) == kvs{{"a", "1"}, {"b", "22"}});
    CHECK(dump(kv_table::retained) == kvs{{"a", "other table"}});
    CHECK(dump(kv_table::messages).empty());
    auto sm = dump(kv_table::session_messages);
    REQUIRE(sm.size() == 1);
    CHECK(sm[0].first == std::string("\x00\x01", 2));
    CHECK(sm[0].second.size() == 100'000);
}

TEST_CASE("the commit handler sees every operation once, in append order, across transactions") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.max_batch_operations = 7;
    lmdb_store s(o);
    recorder rec;
    s.set_commit_handler(rec.handler());
    // Queued before start(): one batch of 1000 split into transactions of 7.
    for (int i = 0; i < 1000; ++i) {
        switch (i % 3) {
        case 0:
            add(s, "t1", "dev", "temp", i, i, tok(i));
            break;
        case 1:
            s.put(kv_table::retained, "k" + std::to_string(i % 10), "v", tok(i));
            break;
        default:
            s.erase(kv_table::retained, "k" + std::to_string(i % 10), tok(i));
        }
    }
    CHECK(s.stats().queued_operations == 1000);
    s.start();
    s.flush();
    auto seen = rec.take();
    REQUIRE(seen.size() == 1000);
    bool ordered = true;
    for (int i = 0; i < 1000; ++i)
        ordered = ordered && seen[static_cast<std::size_t>(i)].first == i &&
                  seen[static_cast<std::size_t>(i)].second == commit_status::committed;
    CHECK(ordered);
    CHECK(s.stats().commits >= 1000 / 7);
    CHECK(s.stats().queued_operations == 0);
}

TEST_CASE("a checkpoint of many series goes one transaction at a time, with commits in between") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.checkpoint_points = 300; // the first batch starts a round
    o.checkpoint_interval = std::chrono::hours(1);
    o.checkpoint_series_per_txn = 10; // 30 transactions for the round
    {
        lmdb_store s(o);
        std::atomic<std::uint64_t> checkpoints_at_late{99};
        s.set_commit_handler([&](std::shared_ptr<void> t, commit_status) {
            const int i = *static_cast<int*>(t.get());
            if (i == 299) // queued before the round starts, after the batch that starts it
                add(s, "t1", "late", "m", 1000, 1.0, tok(300));
            else if (i == 300)
                checkpoints_at_late = s.stats().checkpoints;
        });
        for (int i = 0; i < 300; ++i)
            add(s, "t1", "d" + std::to_string(i), "m", 1000, i, tok(i));
        s.start();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (s.stats().checkpoints == 0 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        CHECK(s.stats().checkpoints == 1);
        CHECK(checkpoints_at_late == 0); // committed while the round was under way
        CHECK(must_query(s, series_key{"t1", "late", "m"}, 0, 2000).points.size() == 1);
        CHECK(must_query(s, series_key{"t1", "d7", "m"}, 0, 2000).points.size() == 1);
    }
    // Every point once after a reopen: the round trimmed the journal only of
    // what the rings hold.
    lmdb_store s(o);
    bool once = true;
    for (int i = 0; i < 300; ++i) {
        const auto q = must_query(s, series_key{"t1", "d" + std::to_string(i), "m"}, 0, 2000);
        once = once && q.points.size() == 1 && q.points[0].value == i;
    }
    CHECK(once);
    CHECK(must_query(s, series_key{"t1", "late", "m"}, 0, 2000).points.size() == 1);
}

TEST_CASE("appends beyond max_queued_operations, or after stop(), are refused and counted") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.max_queued_operations = 3;
    lmdb_store s(o);
    recorder rec;
    s.set_commit_handler(rec.handler());
    CHECK(add(s, "t1", "dev", "temp", 1, 1, tok(0)) == append_result::queued);
    CHECK(s.put(kv_table::sessions, "a", "b", tok(1)) == append_result::queued);
    CHECK(s.erase(kv_table::sessions, "x", tok(2)) == append_result::queued);
    CHECK(add(s, "t1", "dev", "temp", 2, 1, tok(3)) == append_result::overloaded);
    CHECK(s.put(kv_table::sessions, "a", "b", tok(4)) == append_result::overloaded);
    CHECK(s.stats().overloaded == 2);
    s.start();
    s.flush();
    CHECK(rec.take().size() == 3);
    CHECK(add(s, "t1", "dev", "temp", 2, 1, tok(5)) == append_result::queued);
    s.stop();
    CHECK(rec.take().size() == 1);
    CHECK(add(s, "t1", "dev", "temp", 3, 1, tok(6)) == append_result::overloaded);
    CHECK(s.stats().overloaded == 3);
    s.flush(); // returns: the writer is gone
}

TEST_CASE("a full map refuses whole batches as storage_full and the store keeps working") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.initial_map_size = 256u << 10;
    o.max_map_size = 1u << 20;
    o.sync_on_commit = false; // speed; the map limit is what is tested
    o.points_per_series = 16;
    o.minute_slots = 4;
    o.hour_slots = 4;
    o.checkpoint_points = 1;
    lmdb_store s(o);
    recorder rec;
    s.set_commit_handler(rec.handler());
    s.start();
    // Some key/value data to free later.
    const std::string big(8'000, 'x');
    for (int i = 0; i < 30; ++i)
        s.put(kv_table::messages, "m" + std::to_string(1000 + i), big, tok(i));
    s.flush();
    for (const auto& [t, st] : rec.take())
        REQUIRE(st == commit_status::committed);
    // Then new series, 100 per reading, until the map is full.
    std::vector<std::string> names;
    for (int i = 0; i < 100'000; ++i)
        names.push_back("metric_with_a_long_name_" + std::to_string(i));
    bool full = false;
    int committed_readings = 0;
    for (int r = 0; r < 1000 && !full; ++r) {
        std::vector<metric_value> mv;
        for (int k = 0; k < 100; ++k)
            mv.push_back({names[static_cast<std::size_t>(r * 100 + k)], 1.0});
        s.append(reading{"t", "d", 1000 + r, mv}, tok(r));
        s.flush();
        auto seen = rec.take();
        REQUIRE(seen.size() == 1);
        if (seen[0].second == commit_status::storage_full)
            full = true;
        else
            ++committed_readings;
    }
    REQUIRE(full);
    CHECK(committed_readings > 0);
    const auto st = s.stats();
    CHECK(st.storage_full_errors >= 1);
    CHECK(st.map_size == o.max_map_size);
    CHECK(st.series == static_cast<std::uint64_t>(committed_readings) * 100);
    // The refused reading left nothing behind.
    CHECK(s.list_series("t", "d").size() == static_cast<std::size_t>(committed_readings) * 100);
    // Committed data is intact.
    auto q = must_query(s, series_key{"t", "d", names[0]}, 0, 100'000);
    CHECK(q.points.size() == 1);
    // Erasing frees space: erases commit, then small writes commit again.
    for (int i = 0; i < 30; ++i)
        s.erase(kv_table::messages, "m" + std::to_string(1000 + i), tok(100 + i));
    s.flush();
    for (const auto& [t, st2] : rec.take())
        CHECK(st2 == commit_status::committed);
    s.put(kv_table::sessions, "small", "v", tok(200));
    add(s, "t", "d", "one_more", 5000, 7, tok(201));
    s.flush();
    auto last = rec.take();
    REQUIRE(last.size() == 2);
    CHECK(last[0].second == commit_status::committed);
    CHECK(last[1].second == commit_status::committed);
    CHECK(must_query(s, series_key{"t", "d", "one_more"}, 0, 10'000).points.size() == 1);
}

TEST_CASE("readers see whole commits, in time order, while the writer commits, checkpoints and grows the map") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.initial_map_size = 256u << 10; // grows several times during the test
    o.points_per_series = 5000;
    o.checkpoint_points = 700;
    o.checkpoint_interval = std::chrono::milliseconds(3);
    o.checkpoint_series_per_txn = 1; // readers also see one series checkpointed, the other not yet
    lmdb_store s(o);
    s.start();
    std::atomic<bool> done{false};
    std::atomic<int> failures{0}, reads{0}, checked{0};
    const series_key keys[] = {{"t", "d", "a"}, {"t", "d", "b"}};
    auto reader = [&](int which) {
        std::int64_t seen_last = 0;
        while (!done) {
            ++reads;
            auto l = s.latest("t", "d");
            if (l.empty())
                continue;
            const std::int64_t lt = l[0].ts_ms;
            if (lt < seen_last)
                ++failures; // went back in time
            seen_last = lt;
            const std::int64_t from = std::max<std::int64_t>(1000, lt - 3'000'000);
            auto q = s.query(series_query{keys[which], from, lt, 100'000});
            if (!q || q->source != resolution::raw) {
                ++failures;
                continue;
            }
            // Every second from `from` to at least `lt`, each once, value = 2 x ts / 1000.
            const auto& p = q->points;
            bool ok = p.size() == static_cast<std::size_t>((lt - from) / 1000 + 1) && p.front().ts_ms == from;
            for (std::size_t i = 0; ok && i < p.size(); ++i)
                ok = p[i].ts_ms == from + static_cast<std::int64_t>(i) * 1000 &&
                     p[i].value == static_cast<double>(p[i].ts_ms / 1000 * (which == 0 ? 2 : 3));
            if (!ok)
                ++failures;
            ++checked;
        }
    };
    std::thread r1(reader, 0), r2(reader, 1);
    constexpr int n = 20'000;
    for (int i = 1; i <= n; ++i) {
        const metric_value mv[] = {{"a", 2.0 * i}, {"b", 3.0 * i}};
        while (s.append(reading{"t", "d", 1000LL * i, mv}, {}) != append_result::queued)
            std::this_thread::yield();
        if (i % 100 == 0)
            s.flush();
    }
    s.flush();
    // Let the readers see the final state too.
    const int before = reads;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (reads < before + 4 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::yield();
    done = true;
    r1.join();
    r2.join();
    CHECK(failures == 0);
    CHECK(checked > 0);
    CHECK(s.stats().checkpoints > 3);
    CHECK(s.stats().map_size > o.initial_map_size);
    auto q = must_query(s, keys[0], 1000LL * (n - 4999), 1000LL * n);
    CHECK(q.points.size() == 5000);
}

TEST_CASE("relaxed durability: data is written and synced later") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.sync_on_commit = false;
    o.relaxed_sync_interval = std::chrono::milliseconds(10);
    {
        lmdb_store s(o);
        s.start();
        for (int i = 0; i < 100; ++i)
            add(s, "t1", "dev", "temp", i, i);
        s.flush();
        CHECK(must_query(s, k_temp, 0, 1000).points.size() == 100);
    }
    lmdb_store s(o);
    CHECK(must_query(s, k_temp, 0, 1000).points.size() == 100);
}

TEST_CASE("relaxed durability: a commit gathers what arrives within relaxed_commit_delay") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.sync_on_commit = false;
    SUBCASE("appends of the delay share one transaction, committed without flush()") {
        // Long against the pauses below, which would each end a batch of
        // a writer that did not wait.
        o.relaxed_commit_delay = std::chrono::seconds(3);
        lmdb_store s(o);
        std::atomic<int> committed{0};
        s.set_commit_handler([&](std::shared_ptr<void>, commit_status st) {
            if (st == commit_status::committed) committed.fetch_add(1);
        });
        s.start();
        const auto before = s.stats().commits;
        for (int i = 0; i < 50; ++i) {
            add(s, "t1", "dev", "temp", i, i);
            if (i % 10 == 9)
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        // The writer commits by itself once the delay has passed.
        while (committed.load() < 50)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        CHECK(s.stats().commits - before == 1);
        CHECK(must_query(s, k_temp, 0, 1000).points.size() == 50);
    }
    SUBCASE("flush() and stop() do not wait for the delay") {
        // An hour: the test would time out if either waited for it.
        o.relaxed_commit_delay = std::chrono::hours(1);
        {
            lmdb_store s(o);
            s.start();
            for (int i = 0; i < 10; ++i)
                add(s, "t1", "dev", "temp", i, i);
            s.flush();
            CHECK(must_query(s, k_temp, 0, 1000).points.size() == 10);
            for (int i = 10; i < 20; ++i)
                add(s, "t1", "dev", "temp", i, i);
            s.stop();
        }
        lmdb_store s(o);
        CHECK(must_query(s, k_temp, 0, 1000).points.size() == 20);
    }
}

// The scheduling class of this process's thread called `name` (-1: none).
int policy_of_thread(std::string_view name) {
    for (const auto& e : fs::directory_iterator("/proc/self/task")) {
        std::ifstream comm(e.path() / "comm");
        std::string n;
        std::getline(comm, n);
        if (n == name)
            return sched_getscheduler(static_cast<pid_t>(std::stol(e.path().filename().string())));
    }
    return -1;
}

// Waits up to 10 s for the thread called `name` to be in `policy`.
bool reaches_policy(std::string_view name, int policy) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (policy_of_thread(name) != policy) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

// A store whose commit handler, once armed, holds the writer until released.
struct held_writer {
    std::mutex m;
    std::condition_variable cv;
    bool armed = false, released = false, holding = false;
    int committed = 0;

    void attach(lmdb_store& s) {
        s.set_commit_handler([this](std::shared_ptr<void>, commit_status st) {
            std::unique_lock l(m);
            committed += st == commit_status::committed;
            if (armed) {
                holding = true;
                cv.notify_all();
                cv.wait(l, [&] { return released; });
            }
        });
    }
    void arm() {
        std::lock_guard l(m);
        armed = true;
    }
    void wait_holding() { // until the writer is held in the handler
        std::unique_lock l(m);
        cv.wait(l, [&] { return holding; });
    }
    void release() {
        {
            std::lock_guard l(m);
            released = true;
        }
        cv.notify_all();
    }
};

TEST_CASE("the writer runs as SCHED_IDLE while it keeps up and as SCHED_BATCH once 4096 operations wait") {
    temp_dir dir;
    auto o = small_options(dir.path);
    o.sync_on_commit = true;
    lmdb_store s(o);
    held_writer h;
    h.attach(s);
    s.start();
    add(s, "t1", "dev", "temp", 0, 0);
    s.flush();
    if (!pulsegate::common::may_leave_sched_idle()) {
        // It would not be allowed back, so it never goes idle.
        CHECK(policy_of_thread("pg-store-write") == SCHED_BATCH);
        return;
    }
    // A flush gave it its full share; a batch taken with nobody waiting
    // makes it idle again.
    add(s, "t1", "dev", "temp", 1, 1);
    CHECK(reaches_policy("pg-store-write", SCHED_IDLE));
    h.arm();
    for (int i = 2; i <= 5001; ++i)
        add(s, "t1", "dev", "temp", i, i);
    // The producer that made it 4096 switched the held writer.
    CHECK(policy_of_thread("pg-store-write") == SCHED_BATCH);
    h.release();
    s.flush();
    // Back to idle once it finds the queue short again.
    add(s, "t1", "dev", "temp", 5002, 5002);
    CHECK(reaches_policy("pg-store-write", SCHED_IDLE));
    s.flush();
    std::lock_guard l(h.m);
    CHECK(h.committed == 5003);
}

TEST_CASE("an idle writer gets its full share while a flush or stop() waits for it, and when starved") {
    temp_dir dir;
    auto o = small_options(dir.path);
    lmdb_store s(o);
    held_writer h;
    h.attach(s);
    s.start();
    if (!pulsegate::common::may_leave_sched_idle())
        return; // never idle there (previous test)
    add(s, "t1", "dev", "temp", 0, 0);
    REQUIRE(reaches_policy("pg-store-write", SCHED_IDLE));

    SUBCASE("a flush waits") {
        h.arm();
        add(s, "t1", "dev", "temp", 1, 1); // the writer takes it and is held
        std::thread waiter([&] { s.flush(); });
        CHECK(reaches_policy("pg-store-write", SCHED_BATCH));
        h.release();
        waiter.join();
    }
    SUBCASE("two operations wait and the writer takes no batch (the watch thread)") {
        h.arm();
        add(s, "t1", "dev", "temp", 1, 1); // taken, held
        add(s, "t1", "dev", "temp", 2, 2); // waits, far below 4096
        CHECK(reaches_policy("pg-store-write", SCHED_BATCH));
        h.release();
        s.flush();
    }
    SUBCASE("stop() waits for the last commits and the final checkpoint") {
        h.arm();
        add(s, "t1", "dev", "temp", 1, 1);
        h.wait_holding(); // the writer took it idle, and commits it later
        std::thread stopper([&] { s.stop(); }); // joins the watch thread first
        CHECK(reaches_policy("pg-store-write", SCHED_BATCH));
        h.release();
        stopper.join();
    }
}

TEST_CASE("copy_to and lmdb_backup make complete copies, journaled points included") {
    temp_dir dir;
    auto o = small_options(dir.sub("live"));
    o.checkpoint_interval = std::chrono::hours(1);
    o.checkpoint_points = 1u << 30;
    lmdb_store s(o);
    s.start();
    for (int i = 0; i < 50; ++i)
        add(s, "t1", "dev", "temp", i, i);
    s.put(kv_table::retained, "topic", "payload", {});
    s.flush();
    REQUIRE(s.stats().checkpoints == 0); // the points are in the journal only
    auto check = [](const fs::path& p) {
        auto c = small_options(p);
        lmdb_store copy(c);
        CHECK(must_query(copy, k_temp, 0, 1000).points.size() == 50);
        int n = 0;
        copy.scan(kv_table::retained, [&](std::string_view k, std::string_view v) {
            CHECK(k == "topic");
            CHECK(v == "payload");
            ++n;
        });
        CHECK(n == 1);
    };
    REQUIRE_FALSE(s.copy_to(dir.sub("online")));
    check(dir.sub("online"));
    // Into a directory that already holds an environment: refused.
    CHECK(s.copy_to(dir.sub("online")));
    // From another "process": the environment opened read-only.
    REQUIRE_FALSE(lmdb_backup(dir.sub("live"), dir.sub("backup")));
    check(dir.sub("backup"));
    CHECK(lmdb_backup(dir.sub("missing"), dir.sub("backup2")));
}

TEST_CASE("200k points over 1000 series are all queryable") {
    temp_dir dir;
    lmdb_options o;
    o.dir = dir.path;
    o.checkpoint_points = 50'000;
    lmdb_store s(o);
    s.start();
    std::vector<std::string> devices, metrics;
    for (int d = 0; d < 100; ++d)
        devices.push_back("device-" + std::to_string(d));
    for (int m = 0; m < 10; ++m)
        metrics.push_back("metric-" + std::to_string(m));
    metric_value mv[10];
    for (int i = 0; i < 200; ++i) {
        for (int d = 0; d < 100; ++d) {
            for (int m = 0; m < 10; ++m)
                mv[m] = {metrics[static_cast<std::size_t>(m)], static_cast<double>(i * 1000 + d * 10 + m)};
            while (s.append(reading{"tenant", devices[static_cast<std::size_t>(d)], 1'700'000'000'000 + i * 1000LL, mv},
                            {}) != append_result::queued)
                std::this_thread::yield();
        }
    }
    s.flush();
    CHECK(s.stats().points_written == 200'000);
    CHECK(s.stats().series == 1000);
    bool all = true;
    for (int d = 0; d < 100; ++d)
        for (int m = 0; m < 10; ++m) {
            auto q = must_query(s, series_key{"tenant", devices[static_cast<std::size_t>(d)],
                                              metrics[static_cast<std::size_t>(m)]},
                                1'700'000'000'000, 1'700'000'000'000 + 200'000, 1000);
            all = all && q.source == resolution::raw && q.points.size() == 200 &&
                  q.points.front().value == d * 10 + m && q.points.back().value == 199'000 + d * 10 + m;
        }
    CHECK(all);
}

TEST_CASE("a directory that cannot be used fails at startup, naming it") {
    temp_dir dir;
    const auto file = dir.sub("a_file");
    { std::ofstream(file) << "not a directory"; }
    auto o = small_options(file / "store");
    try {
        lmdb_store s(o);
        FAIL("opened a store under a regular file");
    } catch (const std::system_error& e) {
        CHECK(std::string(e.what()).find(file.string()) != std::string::npos);
    }
}

TEST_CASE("an environment of another format (a newer pulsegate) is refused untouched, naming the directory") {
    pulsegate::test::temp_dir d("pg-lmdb-format");
    const auto dir = d.path / "telemetry";
    { lmdb_store s(small_options(dir)); }
    pulsegate::test::set_lmdb_format(dir, 2);
    try {
        lmdb_store s(small_options(dir));
        FAIL("opened an environment of format 2");
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        CHECK(what.find(dir.string()) != std::string::npos);
        CHECK(what.find("unknown format") != std::string::npos);
    }
}
