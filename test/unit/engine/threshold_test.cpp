// engine/threshold: the state machine of one (rule, device) shared by the
// live evaluator and the dry run: every operator, for_s (pending, cancel,
// opening exactly at the due time), and hysteresis with a clear value.

#include "engine/threshold.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <vector>

using namespace pulsegate::engine;
namespace st = pulsegate::storage::state;
using st::compare_op;

namespace {

using act = threshold_action;

threshold_params params(compare_op op, double value, std::optional<double> clear = std::nullopt,
                        std::int64_t for_s = 0) {
    st::rule_record r;
    r.op = op;
    r.value = value;
    r.clear_value = clear;
    r.for_s = for_s;
    return threshold_params::of(r);
}

// Feeds `values` one second apart (from t = 1000 ms) and returns the actions.
std::vector<act> feed(const threshold_params& p, threshold_state& s, const std::vector<double>& values) {
    std::vector<act> out;
    std::int64_t t = 1000;
    for (const auto v : values) {
        out.push_back(s.on_reading(p, v, t));
        t += 1000;
    }
    return out;
}

} // namespace

TEST_CASE("satisfies: every operator at, above and below the threshold") {
    struct row {
        compare_op op;
        bool below, at, above; // v = 9, 10, 11 against 10
    };
    const row rows[] = {
        {compare_op::gt, false, false, true}, {compare_op::lt, true, false, false},
        {compare_op::ge, false, true, true},  {compare_op::le, true, true, false},
        {compare_op::eq, false, true, false}, {compare_op::ne, true, false, true},
    };
    for (const auto& r : rows) {
        CAPTURE(st::to_string(r.op));
        CHECK(satisfies(r.op, 9, 10) == r.below);
        CHECK(satisfies(r.op, 10, 10) == r.at);
        CHECK(satisfies(r.op, 11, 10) == r.above);
    }
}

TEST_CASE("rule_record -> threshold_params") {
    st::rule_record r;
    r.op = compare_op::le;
    r.value = 5;
    r.for_s = 30;
    auto p = threshold_params::of(r);
    CHECK(p.op == compare_op::le);
    CHECK(p.value == 5);
    CHECK(p.clear_value == 5); // none: the threshold itself
    CHECK(p.for_ms == 30'000);
    r.clear_value = 7;
    CHECK(threshold_params::of(r).clear_value == 7);
}

TEST_CASE("every operator without for_s or clear value: open, repeat, close") {
    struct row {
        compare_op op;
        double breach, still, clear; // against 10
    };
    const row rows[] = {
        {compare_op::gt, 11, 12, 10}, {compare_op::lt, 9, 8, 10},  {compare_op::ge, 10, 11, 9},
        {compare_op::le, 10, 9, 11},  {compare_op::eq, 10, 10, 11}, {compare_op::ne, 11, 9, 10},
    };
    for (const auto& r : rows) {
        CAPTURE(st::to_string(r.op));
        const auto p = params(r.op, 10);
        threshold_state s;
        // A non-breaching reading does nothing; the breach opens at once.
        CHECK(feed(p, s, {r.clear, r.breach, r.still, r.clear, r.clear}) ==
              std::vector<act>{act::none, act::open, act::repeat, act::close, act::none});
        CHECK(s.phase == threshold_phase::normal);
        // The next episode opens again, with its own first value.
        CHECK(s.on_reading(p, r.still, 99'000) == act::open);
        CHECK(s.first_value == r.still);
        CHECK(s.phase == threshold_phase::firing);
    }
}

TEST_CASE("first_value is the reading that opened the episode") {
    const auto p = params(compare_op::gt, 30);
    threshold_state s;
    feed(p, s, {20, 31, 40, 35});
    CHECK(s.first_value == 31);
}

TEST_CASE("hysteresis: > 30 clear 28 opens at 31, stays open at 29, closes at 28") {
    const auto p = params(compare_op::gt, 30, 28);
    threshold_state s;
    CHECK(feed(p, s, {30, 31, 29, 30, 28.5, 28, 29, 31}) ==
          std::vector<act>{act::none, act::open, act::repeat, act::repeat, act::repeat, act::close, act::none,
                           act::open});
}

TEST_CASE("hysteresis: < 10 clear 12 is the mirror") {
    const auto p = params(compare_op::lt, 10, 12);
    threshold_state s;
    CHECK(feed(p, s, {10, 9, 11, 11.9, 12, 11, 9}) ==
          std::vector<act>{act::none, act::open, act::repeat, act::repeat, act::close, act::none, act::open});
}

TEST_CASE("hysteresis with the inclusive operators") {
    SUBCASE(">= 30 clear 28: 28 still holds, 27.9 clears") {
        const auto p = params(compare_op::ge, 30, 28);
        threshold_state s;
        CHECK(feed(p, s, {30, 28, 27.9}) == std::vector<act>{act::open, act::repeat, act::close});
    }
    SUBCASE("<= 10 clear 12: 12 still holds, 12.1 clears") {
        const auto p = params(compare_op::le, 10, 12);
        threshold_state s;
        CHECK(feed(p, s, {10, 12, 12.1}) == std::vector<act>{act::open, act::repeat, act::close});
    }
}

TEST_CASE("every operator with for_s: pending, then open on time or on a later reading") {
    struct row {
        compare_op op;
        double breach, clear; // against 10
    };
    const row rows[] = {
        {compare_op::gt, 11, 10}, {compare_op::lt, 9, 10},  {compare_op::ge, 10, 9},
        {compare_op::le, 10, 11}, {compare_op::eq, 10, 11}, {compare_op::ne, 11, 10},
    };
    for (const auto& r : rows) {
        CAPTURE(st::to_string(r.op));
        const auto p = params(r.op, 10, std::nullopt, 60);

        // Opened by time, with no further reading.
        threshold_state s;
        CHECK(s.on_reading(p, r.breach, 1'000) == act::arm);
        CHECK(s.phase == threshold_phase::pending);
        CHECK(s.pending_since_ms == 1'000);
        CHECK(s.due_ms(p) == 61'000);
        CHECK(s.on_time(p, 60'999) == act::none);
        CHECK(s.phase == threshold_phase::pending);
        CHECK(s.on_time(p, 61'000) == act::open);
        CHECK(s.phase == threshold_phase::firing);
        CHECK(s.first_value == r.breach);
        CHECK(s.on_time(p, 70'000) == act::none); // only a pending episode opens
        CHECK(s.on_reading(p, r.clear, 71'000) == act::close);

        // Opened by a breaching reading at or after the due time.
        threshold_state s2;
        CHECK(s2.on_reading(p, r.breach, 1'000) == act::arm);
        CHECK(s2.on_reading(p, r.breach, 30'000) == act::none); // still pending
        CHECK(s2.on_reading(p, r.breach, 61'000) == act::open);
        CHECK(s2.first_value == r.breach);
    }
}

TEST_CASE("for_s: a non-breaching reading cancels the pending episode") {
    const auto p = params(compare_op::gt, 30, std::nullopt, 60);
    threshold_state s;
    CHECK(s.on_reading(p, 35, 1'000) == act::arm);
    CHECK(s.on_reading(p, 30, 20'000) == act::none);
    CHECK(s.phase == threshold_phase::normal);
    // The old episode's due time passes without opening anything.
    CHECK(s.on_time(p, 61'000) == act::none);
    CHECK(s.phase == threshold_phase::normal);
    // A new breach starts a new episode from its own time and value.
    CHECK(s.on_reading(p, 33, 62'000) == act::arm);
    CHECK(s.pending_since_ms == 62'000);
    CHECK(s.first_value == 33);
    CHECK(s.on_time(p, 121'999) == act::none);
    CHECK(s.on_time(p, 122'000) == act::open);
    CHECK(s.first_value == 33);
}

TEST_CASE("for_s: a later breaching reading keeps the first value and the start") {
    const auto p = params(compare_op::gt, 30, std::nullopt, 10);
    threshold_state s;
    CHECK(s.on_reading(p, 31, 0) == act::arm);
    CHECK(s.on_reading(p, 50, 5'000) == act::none);
    CHECK(s.pending_since_ms == 0);
    CHECK(s.first_value == 31);
    CHECK(s.on_reading(p, 40, 10'000) == act::open);
    CHECK(s.first_value == 31);
}

TEST_CASE("for_s with a clear value") {
    const auto p = params(compare_op::gt, 30, 28, 10);
    threshold_state s;
    CHECK(s.on_reading(p, 31, 0) == act::arm);
    // While pending, the breach (not the clear value) decides: 29 cancels.
    CHECK(s.on_reading(p, 29, 5'000) == act::none);
    CHECK(s.phase == threshold_phase::normal);
    CHECK(s.on_reading(p, 31, 6'000) == act::arm);
    CHECK(s.on_time(p, 16'000) == act::open);
    // Once firing, the clear value decides.
    CHECK(s.on_reading(p, 29, 17'000) == act::repeat);
    CHECK(s.on_reading(p, 28, 18'000) == act::close);
    CHECK(s.phase == threshold_phase::normal);
}
