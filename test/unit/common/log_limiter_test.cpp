#include "common/log_limiter.hpp"

#include <doctest/doctest.h>

using pulsegate::common::log_limiter;
using namespace std::chrono_literals;

TEST_CASE("log_limiter: the first event is logged, then one per period with the count left out") {
    log_limiter l(10s);
    const auto t0 = log_limiter::clock::time_point{} + 1h;

    auto first = l.admit(t0);
    REQUIRE(first);
    CHECK(*first == 0);
    for (int i = 1; i <= 500; ++i) CHECK_FALSE(l.admit(t0 + i * 10ms)); // up to 5 s in
    CHECK_FALSE(l.admit(t0 + 9999ms));

    auto second = l.admit(t0 + 10s);
    REQUIRE(second);
    CHECK(*second == 501);

    // The period counts from the last line logged, not from the first.
    CHECK_FALSE(l.admit(t0 + 19s));
    auto third = l.admit(t0 + 20s);
    REQUIRE(third);
    CHECK(*third == 1);

    // After a quiet spell, the next event is logged at once.
    auto later = l.admit(t0 + 1h);
    REQUIRE(later);
    CHECK(*later == 0);
}
