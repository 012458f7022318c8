#pragma once
// A hashed timer wheel (Varghese & Lauck): `slots` buckets of `tick_ms`
// each; a timer lives in the bucket of its deadline and carries the
// deadline itself, so a bucket visited before a far deadline's turn keeps
// it for the next revolution. Scheduling is O(1); advancing one tick costs
// the timers of one bucket, whatever the number of timers elsewhere. There
// is no cancel: owners validate a timer when it fires (the deadline or a
// generation they stored), which keeps a per-reading reschedule free (the
// owner moves its own deadline and re-arms only when the old timer fires).
//
// Single-threaded (whoever holds the evaluator). Buckets keep their
// capacity (up to 8x what they hold), so a steady population of timers
// schedules without allocating.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pulsegate::engine {

template <class Payload>
class timer_wheel {
public:
    explicit timer_wheel(std::int64_t now_ms, std::int64_t tick_ms = 100, std::size_t slots = 4096)
        : tick_ms_(tick_ms), buckets_(slots), current_tick_(now_ms / tick_ms) {}

    // Fires at the first advance() to a time >= deadline_ms (a deadline in
    // the past fires at the next advance).
    void schedule(std::int64_t deadline_ms, const Payload& p) {
        // The first tick at or after the deadline: when advance() reaches
        // it, now >= tick * tick_ms >= deadline.
        auto tick = deadline_ms >= 0 ? (deadline_ms + tick_ms_ - 1) / tick_ms_ : deadline_ms / tick_ms_;
        if (tick <= current_tick_) tick = current_tick_ + 1;
        buckets_[static_cast<std::size_t>(tick) % buckets_.size()].push_back({deadline_ms, p});
        ++size_;
    }

    // Visits the buckets from the last advance up to `now_ms` and calls
    // fire(deadline_ms, payload) for every due timer (which may schedule
    // more). Returns how many fired.
    template <class Fire>
    std::size_t advance(std::int64_t now_ms, Fire&& fire) {
        const auto target = now_ms / tick_ms_;
        std::size_t fired = 0;
        // After a long pause, one revolution visits every bucket.
        auto from = current_tick_ + 1;
        if (target - current_tick_ > static_cast<std::int64_t>(buckets_.size()))
            from = target - static_cast<std::int64_t>(buckets_.size()) + 1;
        for (auto t = from; t <= target; ++t) {
            current_tick_ = t;
            auto& b = buckets_[static_cast<std::size_t>(t) % buckets_.size()];
            // Due entries are swapped out first: fire() may schedule into
            // this very bucket (a deadline one revolution away).
            scratch_.clear();
            std::size_t keep = 0;
            for (std::size_t i = 0; i < b.size(); ++i) {
                if (b[i].deadline_ms <= now_ms) scratch_.push_back(b[i]);
                else b[keep++] = b[i];
            }
            b.resize(keep);
            // A bucket that once held a burst (all devices armed at once)
            // gives the memory back instead of keeping its peak forever.
            if (b.capacity() > 1024 && b.size() < b.capacity() / 8) b.shrink_to_fit();
            size_ -= scratch_.size();
            for (const auto& e : scratch_) {
                ++fired;
                fire(e.deadline_ms, e.payload);
            }
        }
        current_tick_ = target;
        return fired;
    }

    std::size_t size() const noexcept { return size_; }
    std::int64_t tick_ms() const noexcept { return tick_ms_; }

private:
    struct entry {
        std::int64_t deadline_ms;
        Payload payload;
    };
    std::int64_t tick_ms_;
    std::vector<std::vector<entry>> buckets_;
    std::vector<entry> scratch_;
    std::int64_t current_tick_;
    std::size_t size_ = 0;
};

} // namespace pulsegate::engine
