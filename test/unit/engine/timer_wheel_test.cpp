// engine/timer_wheel: timers fire once, never early and at most one tick
// late, in deadline order across ticks; past deadlines, deadlines several
// revolutions away, rescheduling from the callback, a long pause, and a
// large random population.

#include "engine/timer_wheel.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

using namespace pulsegate::engine;

namespace {

struct firing {
    std::int64_t at_ms;       // the advance() that fired it
    std::int64_t deadline_ms; // as handed to fire()
    int payload;
};

// Advances `w` to `now` and appends what fired.
std::size_t advance(timer_wheel<int>& w, std::int64_t now, std::vector<firing>& out) {
    return w.advance(now, [&](std::int64_t deadline, int p) { out.push_back({now, deadline, p}); });
}

} // namespace

TEST_CASE("a new wheel is empty and advancing it fires nothing") {
    timer_wheel<int> w(1'000, 100, 16);
    CHECK(w.size() == 0);
    CHECK(w.tick_ms() == 100);
    std::vector<firing> fired;
    CHECK(advance(w, 50'000, fired) == 0);
    CHECK(fired.empty());
}

TEST_CASE("deadlines on tick boundaries fire exactly at their tick, in order") {
    timer_wheel<int> w(0, 100, 64);
    // Scheduled out of order; two share a tick.
    w.schedule(500, 5);
    w.schedule(200, 2);
    w.schedule(1'000, 10);
    w.schedule(200, 22);
    w.schedule(100, 1);
    CHECK(w.size() == 5);

    std::vector<firing> fired;
    for (std::int64_t now = 0; now <= 1'200; now += 100) {
        const auto before = fired.size();
        const auto n = advance(w, now, fired);
        CHECK(n == fired.size() - before);
    }
    REQUIRE(fired.size() == 5);
    CHECK(fired[0].payload == 1);
    CHECK(fired[0].at_ms == 100);
    CHECK(fired[1].payload == 2); // same tick: in scheduling order
    CHECK(fired[2].payload == 22);
    CHECK(fired[1].at_ms == 200);
    CHECK(fired[2].at_ms == 200);
    CHECK(fired[3].payload == 5);
    CHECK(fired[3].at_ms == 500);
    CHECK(fired[4].payload == 10);
    CHECK(fired[4].at_ms == 1'000);
    for (const auto& f : fired) CHECK(f.deadline_ms == f.at_ms);
    CHECK(w.size() == 0);
}

TEST_CASE("one advance over many ticks fires in deadline order") {
    timer_wheel<int> w(0, 10, 128);
    std::vector<std::int64_t> deadlines{700, 30, 460, 110, 990, 10, 250, 600};
    for (std::size_t i = 0; i < deadlines.size(); ++i) w.schedule(deadlines[i], static_cast<int>(i));
    std::vector<firing> fired;
    CHECK(advance(w, 1'000, fired) == deadlines.size());
    REQUIRE(fired.size() == deadlines.size());
    for (std::size_t i = 1; i < fired.size(); ++i) CHECK(fired[i - 1].deadline_ms < fired[i].deadline_ms);
    for (const auto& f : fired) CHECK(f.deadline_ms == deadlines[static_cast<std::size_t>(f.payload)]);
}

TEST_CASE("a timer never fires before its deadline and at most one tick after") {
    // A deadline inside a tick must not be filed under a tick the wheel
    // visits before the deadline: advance(1000) would keep it and
    // advance(1100) would start at the next bucket, a revolution late.
    timer_wheel<int> w(0, 100, 16);
    w.schedule(1'050, 1);
    std::vector<firing> fired;
    for (std::int64_t now = 0; now <= 1'000; now += 100) advance(w, now, fired);
    CHECK(fired.empty()); // not early
    advance(w, 1'100, fired);
    REQUIRE(fired.size() == 1);
    CHECK(fired[0].at_ms == 1'100);
    CHECK(fired[0].deadline_ms == 1'050);
}

TEST_CASE("advancing one millisecond at a time fires each timer within a tick of its deadline") {
    // Every deadline off a tick boundary is visited one millisecond after
    // its tick starts: it must wait there, not for the next revolution.
    timer_wheel<int> w(0, 100, 32);
    const std::vector<std::int64_t> deadlines{1, 99, 100, 101, 150, 199, 200, 250, 1'234};
    for (std::size_t i = 0; i < deadlines.size(); ++i) w.schedule(deadlines[i], static_cast<int>(i));
    std::vector<firing> fired;
    for (std::int64_t now = 0; now <= 1'400; ++now) advance(w, now, fired);
    CHECK(fired.size() == deadlines.size());
    for (const auto& f : fired) {
        CAPTURE(f.deadline_ms);
        CHECK(f.at_ms >= f.deadline_ms);
        CHECK(f.at_ms < f.deadline_ms + 100);
    }
    CHECK(w.size() == 0);
}

TEST_CASE("a deadline in the past fires at the next advance into a new tick") {
    timer_wheel<int> w(10'000, 100, 16);
    std::vector<firing> fired;
    advance(w, 10'000, fired);
    w.schedule(500, 1);    // long past
    w.schedule(10'000, 2); // now
    w.schedule(-5, 3);     // before the epoch
    CHECK(w.size() == 3);
    advance(w, 10'100, fired);
    REQUIRE(fired.size() == 3);
    CHECK(fired[0].payload == 1);
    CHECK(fired[0].deadline_ms == 500);
    CHECK(fired[1].payload == 2);
    CHECK(fired[2].payload == 3);
    CHECK(w.size() == 0);
    // Nothing fires twice.
    advance(w, 20'000, fired);
    CHECK(fired.size() == 3);
}

TEST_CASE("deadlines several revolutions away fire at their time, not at earlier revolutions") {
    // 8 slots of 10 ms: one revolution is 80 ms.
    timer_wheel<int> w(0, 10, 8);
    w.schedule(250, 1);   // bucket 1 of the 4th revolution
    w.schedule(10, 2);    // the same bucket, first revolution
    w.schedule(1'610, 3); // 20 revolutions away, still bucket 1
    w.schedule(90, 4);    // the same bucket, second revolution
    std::vector<firing> fired;
    for (std::int64_t now = 0; now <= 2'000; now += 10) advance(w, now, fired);
    REQUIRE(fired.size() == 4);
    CHECK(fired[0].payload == 2);
    CHECK(fired[0].at_ms == 10);
    CHECK(fired[1].payload == 4);
    CHECK(fired[1].at_ms == 90);
    CHECK(fired[2].payload == 1);
    CHECK(fired[2].at_ms == 250);
    CHECK(fired[3].payload == 3);
    CHECK(fired[3].at_ms == 1'610);
}

TEST_CASE("the fire callback may schedule, also into the bucket being visited") {
    timer_wheel<int> w(0, 10, 8);
    w.schedule(100, 0);
    std::vector<std::int64_t> at;
    int reschedules = 0;
    std::int64_t now = 0;
    auto step = [&](std::int64_t to) {
        now = to;
        return w.advance(now, [&](std::int64_t deadline, int p) {
            at.push_back(now);
            CHECK(deadline <= now);
            if (p == 0 && reschedules < 3) {
                ++reschedules;
                // Exactly one revolution later: the very bucket being visited.
                w.schedule(deadline + 80, 0);
            } else if (p == 0 && reschedules == 3) {
                ++reschedules;
                // A deadline already past: the next advance, not this one.
                w.schedule(deadline - 50, 1);
            }
        });
    };
    for (std::int64_t t = 0; t <= 500; t += 10) step(t);
    CHECK(at == std::vector<std::int64_t>{100, 180, 260, 340, 350});
    CHECK(w.size() == 0);
}

TEST_CASE("a callback's past deadline during a long advance fires within the same advance") {
    timer_wheel<int> w(0, 10, 8);
    w.schedule(20, 0);
    std::vector<int> fired;
    w.advance(60, [&](std::int64_t, int p) {
        fired.push_back(p);
        if (p == 0) w.schedule(5, 1); // lands in the next tick, still <= 60
    });
    CHECK(fired == std::vector<int>{0, 1});
    CHECK(w.size() == 0);
}

TEST_CASE("a long pause fires everything due exactly once, and keeps the rest") {
    timer_wheel<int> w(0, 10, 8); // a revolution is 80 ms
    std::vector<std::int64_t> deadlines;
    for (std::int64_t d = 3; d <= 1'000; d += 7) deadlines.push_back(d);     // all due by the pause's end
    for (std::int64_t d = 10; d <= 3'000; d += 30) deadlines.push_back(d);   // on tick boundaries
    for (std::size_t i = 0; i < deadlines.size(); ++i) w.schedule(deadlines[i], static_cast<int>(i));
    std::vector<firing> fired;
    // Far more than one revolution in one step.
    advance(w, 1'000, fired);
    std::vector<int> count(deadlines.size(), 0);
    for (const auto& f : fired) {
        ++count[static_cast<std::size_t>(f.payload)];
        CHECK(f.deadline_ms <= 1'000);
    }
    std::size_t due = 0;
    for (std::size_t i = 0; i < deadlines.size(); ++i) {
        CAPTURE(deadlines[i]);
        CHECK(count[i] == (deadlines[i] <= 1'000 ? 1 : 0));
        due += deadlines[i] <= 1'000;
    }
    CHECK(w.size() == deadlines.size() - due);
    // The rest fire exactly at their tick as the wheel moves on.
    for (std::int64_t now = 1'010; now <= 3'010; now += 10) {
        const auto before = fired.size();
        advance(w, now, fired);
        for (auto i = before; i < fired.size(); ++i) CHECK(fired[i].deadline_ms == now);
    }
    CHECK(fired.size() == deadlines.size());
    CHECK(w.size() == 0);
    // Another long pause with nothing due.
    CHECK(advance(w, 1'000'000, fired) == 0);
}

TEST_CASE("100,000 random timers: each fires once, never early, at most one tick late") {
    constexpr std::int64_t tick = 100;
    constexpr std::size_t slots = 4096; // one revolution: 409.6 s
    constexpr std::int64_t horizon = 2'000'000;
    timer_wheel<int> w(0, tick, slots);
    std::mt19937_64 rng(12345);
    std::uniform_int_distribution<std::int64_t> when(0, horizon);
    std::vector<std::int64_t> deadlines(100'000);
    for (auto& d : deadlines) d = when(rng);
    for (std::size_t i = 0; i < deadlines.size(); ++i) w.schedule(deadlines[i], static_cast<int>(i));
    CHECK(w.size() == deadlines.size());

    std::vector<int> fired(deadlines.size(), 0);
    std::vector<std::size_t> order(deadlines.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(), [&](auto a, auto b) { return deadlines[a] < deadlines[b]; });
    std::size_t overdue = 0; // order[0..overdue) are due by more than a tick
    std::size_t early = 0, twice = 0, late = 0, total = 0;

    std::uniform_int_distribution<std::int64_t> step(1, tick);
    for (std::int64_t now = 0; now <= horizon + tick;) {
        total += w.advance(now, [&](std::int64_t deadline, int p) {
            auto& n = fired[static_cast<std::size_t>(p)];
            if (n != 0) ++twice;
            ++n;
            if (deadline != deadlines[static_cast<std::size_t>(p)] || deadline > now) ++early;
        });
        while (overdue < order.size() && deadlines[order[overdue]] <= now - tick) {
            if (fired[order[overdue]] == 0) ++late;
            ++overdue;
        }
        now += step(rng);
    }
    CHECK(early == 0);
    CHECK(twice == 0);
    CHECK(late == 0);
    CHECK(total == deadlines.size());
    CHECK(w.size() == 0);
}

TEST_CASE("size counts scheduled timers until they fire") {
    timer_wheel<int> w(0, 10, 4);
    for (int i = 0; i < 10; ++i) w.schedule(10 * (i + 1), i);
    CHECK(w.size() == 10);
    std::vector<firing> fired;
    advance(w, 35, fired);
    CHECK(fired.size() == 3);
    CHECK(w.size() == 7);
    advance(w, 100, fired);
    CHECK(w.size() == 0);
}
