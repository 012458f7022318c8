#pragma once
// A token bucket that may go into debt: a cost is taken whenever the
// bucket is not in debt, so one message larger than the burst still passes
// once, and the next ones wait until the rate has paid it back. Refills at
// `rate` per second up to `burst`. Owner: one connection (no locking).

#include <algorithm>
#include <chrono>

namespace pulsegate::broker {

class token_bucket {
public:
    using clock = std::chrono::steady_clock;

    token_bucket() = default; // unlimited
    token_bucket(double rate, double burst, clock::time_point now)
        : rate_(rate), burst_(std::max(burst, 1.0)), tokens_(burst_), last_(now) {}

    bool limited() const noexcept { return rate_ > 0; }

    // Takes `cost` if the bucket is not in debt (true), else nothing (false).
    bool take(double cost, clock::time_point now) noexcept {
        if (rate_ <= 0) return true;
        const std::chrono::duration<double> elapsed = now - last_;
        last_ = now;
        tokens_ = std::min(burst_, tokens_ + rate_ * std::max(0.0, elapsed.count()));
        if (tokens_ < 0) return false;
        tokens_ -= cost;
        return true;
    }

private:
    double rate_ = 0; // per second; 0: no limit
    double burst_ = 1;
    double tokens_ = 0;
    clock::time_point last_{};
};

} // namespace pulsegate::broker
