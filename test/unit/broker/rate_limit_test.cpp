// broker::token_bucket (rate_limit.hpp), on a hand-driven clock.

#include "broker/rate_limit.hpp"

#include <doctest/doctest.h>

using namespace pulsegate::broker;
using namespace std::chrono_literals;

TEST_CASE("a burst passes, then the rate") {
    const auto t0 = token_bucket::clock::time_point{} + 1h;
    token_bucket b(10, 20, t0); // 10/s, burst 20
    int passed = 0;
    for (int i = 0; i < 100; ++i) passed += b.take(1, t0);
    CHECK(passed == 21); // 20 tokens; the 21st finds 0 (not in debt) and goes to -1
    CHECK_FALSE(b.take(1, t0));
    CHECK_FALSE(b.take(1, t0 + 50ms)); // still in debt (-1 + 0.5)
    CHECK(b.take(1, t0 + 100ms));      // paid back
}

TEST_CASE("one cost larger than the burst passes once, then waits for the debt") {
    const auto t0 = token_bucket::clock::time_point{} + 1h;
    token_bucket b(1000, 1000, t0); // 1000 bytes/s
    CHECK(b.take(5000, t0));        // in debt by 4000
    CHECK_FALSE(b.take(10, t0 + 1s));
    CHECK_FALSE(b.take(10, t0 + 3900ms));
    CHECK(b.take(10, t0 + 4s));
}

TEST_CASE("no rate: no limit") {
    token_bucket b;
    CHECK_FALSE(b.limited());
    for (int i = 0; i < 1000; ++i) CHECK(b.take(1e9, token_bucket::clock::now()));
}
