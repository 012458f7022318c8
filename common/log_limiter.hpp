#pragma once
// How often a recurring warning reaches the log. An accept loop at the
// descriptor limit fails thousands of times a second; one line every few
// seconds says the same, with how many were left out.

#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>

namespace pulsegate::common {

// Not thread-safe: one per loop (an accept loop, a strand).
class log_limiter {
public:
    using clock = std::chrono::steady_clock;

    explicit log_limiter(clock::duration every) : every_(every) {}

    // An event happened at `now`. Log it when this answers a value: the
    // number of events since the last one logged, that were not.
    std::optional<std::uint64_t> admit(clock::time_point now) {
        if (logged_ && now - last_ < every_) {
            ++quiet_;
            return std::nullopt;
        }
        logged_ = true;
        last_ = now;
        return std::exchange(quiet_, 0);
    }

private:
    clock::duration every_;
    clock::time_point last_{};
    bool logged_ = false;
    std::uint64_t quiet_ = 0;
};

} // namespace pulsegate::common
