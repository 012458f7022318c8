// engine/dry_run: stored readings replayed through the threshold state
// machine (for_s opening at the due time between samples, hysteresis,
// an episode still open at the end) and heartbeat gaps.

#include "engine/dry_run.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <vector>

using namespace pulsegate::engine;
namespace st = pulsegate::storage::state;

namespace {

st::rule_record threshold(st::compare_op op, double value, std::int64_t for_s = 0,
                          std::optional<double> clear = std::nullopt) {
    st::rule_record r;
    r.id = 1;
    r.tenant = "t1";
    r.name = "r";
    r.kind = st::rule_kind::threshold;
    r.metric = "temp";
    r.op = op;
    r.value = value;
    r.for_s = for_s;
    r.clear_value = clear;
    return r;
}

st::rule_record heartbeat(std::int64_t interval_s, std::int64_t missed) {
    st::rule_record r;
    r.id = 2;
    r.tenant = "t1";
    r.name = "hb";
    r.kind = st::rule_kind::heartbeat;
    r.interval_s = interval_s;
    r.missed = missed;
    return r;
}

void check_alert(const dry_run_alert& a, std::int64_t opened, double value, std::optional<std::int64_t> closed,
                 std::optional<double> close_value, std::int64_t count) {
    CHECK(a.opened_at_ms == opened);
    CHECK(a.value == value);
    CHECK(a.closed_at_ms == closed);
    CHECK(a.close_value == close_value);
    CHECK(a.count == count);
}

} // namespace

TEST_CASE("threshold without for_s: opens at the breaching sample, counts, closes") {
    const auto r = threshold(st::compare_op::gt, 30);
    const std::vector<sample> s{{0, 20}, {1'000, 31}, {2'000, 35}, {3'000, 30}, {4'000, 29}, {5'000, 40}};
    const auto out = dry_run(r, s, 10'000);
    REQUIRE(out.size() == 2);
    check_alert(out[0], 1'000, 31, 3'000, 30, 2);
    check_alert(out[1], 5'000, 40, std::nullopt, std::nullopt, 1);
}

TEST_CASE("threshold with for_s and clear value over a series") {
    // > 30 for 10 s, clear 28.
    const auto r = threshold(st::compare_op::gt, 30, 10, 28);
    const std::vector<sample> s{
        {0, 25},
        {1'000, 31},  // pending (due 11 s)
        {5'000, 35},  // still pending
        {8'000, 29},  // cancels: 29 does not breach
        {10'000, 32}, // pending again (due 20 s)
        {15'000, 33},
        {25'000, 34}, // the timer opened it at 20 s with 32; this reading repeats
        {30'000, 29}, // above the clear value: repeats
        {35'000, 28}, // clears
        {40'000, 31}, // pending (due 50 s)
        {45'000, 40},
        {60'000, 45}, // opened at 50 s with 31; repeats
    };
    const auto out = dry_run(r, s, 70'000);
    REQUIRE(out.size() == 2);
    check_alert(out[0], 20'000, 32, 35'000, 28, 3);
    check_alert(out[1], 50'000, 31, std::nullopt, std::nullopt, 2);
}

TEST_CASE("threshold for_s: the due time passes between samples and the next one clears") {
    const auto r = threshold(st::compare_op::lt, 10, 60);
    const std::vector<sample> s{{0, 5}, {30'000, 4}, {100'000, 12}, {110'000, 3}};
    const auto out = dry_run(r, s, 200'000);
    REQUIRE(out.size() == 2);
    // Opened at 60 s by the timer (first value 5), closed by 12 at 100 s.
    check_alert(out[0], 60'000, 5, 100'000, 12, 1);
    // 3 at 110 s is pending at the end; due at 170 s <= end: opens then.
    check_alert(out[1], 170'000, 3, std::nullopt, std::nullopt, 1);
}

TEST_CASE("threshold for_s: a pending episode not yet due at the end does not open") {
    const auto r = threshold(st::compare_op::ge, 100, 60);
    const std::vector<sample> s{{0, 100}, {30'000, 120}};
    CHECK(dry_run(r, s, 59'999).empty());
    const auto out = dry_run(r, s, 60'000);
    REQUIRE(out.size() == 1);
    check_alert(out[0], 60'000, 100, std::nullopt, std::nullopt, 1);
}

TEST_CASE("threshold: no samples, no breach") {
    const auto r = threshold(st::compare_op::gt, 30, 10);
    CHECK(dry_run(r, {}, 1'000'000).empty());
    const std::vector<sample> s{{0, 1}, {1'000, 2}, {2'000, 30}};
    CHECK(dry_run(r, s, 1'000'000).empty());
}

TEST_CASE("heartbeat: gaps of at least the timeout open at last + timeout and close at the next sample") {
    const auto r = heartbeat(10, 3); // 30 s
    const std::vector<sample> s{
        {0, 1},       {10'000, 2}, {20'000, 3},
        {60'000, 4},  // gap 40 s: opened at 50 s
        {70'000, 5},
        {100'000, 6}, // gap exactly 30 s: opens and closes at 100 s
        {129'999, 7}, // gap just under: nothing
        {140'000, 8},
    };
    const auto out = dry_run(r, s, 160'000); // trailing 20 s: nothing
    REQUIRE(out.size() == 2);
    check_alert(out[0], 50'000, 0, 60'000, 4, 1);
    check_alert(out[1], 100'000, 0, 100'000, 6, 1);
}

TEST_CASE("heartbeat: trailing silence up to end_ms stays open") {
    const auto r = heartbeat(60, 2); // 120 s
    const std::vector<sample> s{{0, 1}, {60'000, 2}};
    CHECK(dry_run(r, s, 179'999).empty());
    auto out = dry_run(r, s, 180'000);
    REQUIRE(out.size() == 1);
    check_alert(out[0], 180'000, 0, std::nullopt, std::nullopt, 1);
    out = dry_run(r, s, 1'000'000);
    REQUIRE(out.size() == 1);
    check_alert(out[0], 180'000, 0, std::nullopt, std::nullopt, 1);
}

TEST_CASE("heartbeat: no timeout configured, nothing to report") {
    const std::vector<sample> s{{0, 1}, {1'000'000, 2}};
    CHECK(dry_run(heartbeat(0, 3), s, 2'000'000).empty());
    CHECK(dry_run(heartbeat(10, 0), s, 2'000'000).empty());
}
