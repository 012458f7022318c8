#pragma once
// The threshold state machine of one (rule, device), shared by the live
// evaluator and the dry run so that both decide alike.
//
//   normal --breach--> pending --held for_s (timer or a later reading)--> firing
//      ^                  |                                                 |
//      +---- no breach ---+                                                 |
//      +------------------------- clears (hysteresis) ---------------------+
//
// With for_s = 0 a breach goes straight to firing. "Clears" means the
// reading no longer satisfies `op` against clear_value (or against value
// when there is no clear_value): with `temp > 30, clear 28` an alert opened
// at 31 stays open at 29 and closes at 28.

#include "storage/state/alert_model.hpp"

#include <cstdint>

namespace pulsegate::engine {

using storage::state::compare_op;

constexpr bool satisfies(compare_op op, double v, double threshold) noexcept {
    switch (op) {
    case compare_op::gt: return v > threshold;
    case compare_op::lt: return v < threshold;
    case compare_op::ge: return v >= threshold;
    case compare_op::le: return v <= threshold;
    case compare_op::eq: return v == threshold;
    case compare_op::ne: return v != threshold;
    }
    return false;
}

struct threshold_params {
    compare_op op = compare_op::gt;
    double value = 0;
    double clear_value = 0; // == value when the rule has none
    std::int64_t for_ms = 0;

    static threshold_params of(const storage::state::rule_record& r) noexcept {
        return {r.op, r.value, r.clear_value.value_or(r.value), r.for_s * 1000};
    }
    bool breaches(double v) const noexcept { return satisfies(op, v, value); }
    bool clears(double v) const noexcept { return !satisfies(op, v, clear_value); }
};

enum class threshold_phase : std::uint8_t { normal, pending, firing };

enum class threshold_action : std::uint8_t {
    none,
    arm,    // became pending: call back at pending_since + for_ms
    open,   // open an alert (trigger value: first_value)
    repeat, // firing and still not clear: count the reading
    close,  // firing and clear: close the alert
};

struct threshold_state {
    threshold_phase phase = threshold_phase::normal;
    std::int64_t pending_since_ms = 0;
    double first_value = 0; // the first breaching reading of this episode

    // A reading `v` at `now_ms`.
    threshold_action on_reading(const threshold_params& p, double v, std::int64_t now_ms) noexcept {
        switch (phase) {
        case threshold_phase::normal:
            if (!p.breaches(v)) return threshold_action::none;
            first_value = v;
            if (p.for_ms <= 0) {
                phase = threshold_phase::firing;
                return threshold_action::open;
            }
            phase = threshold_phase::pending;
            pending_since_ms = now_ms;
            return threshold_action::arm;
        case threshold_phase::pending:
            if (!p.breaches(v)) {
                phase = threshold_phase::normal;
                return threshold_action::none;
            }
            return on_time(p, now_ms);
        case threshold_phase::firing:
            if (p.clears(v)) {
                phase = threshold_phase::normal;
                return threshold_action::close;
            }
            return threshold_action::repeat;
        }
        return threshold_action::none;
    }

    // Time passed (the for_s timer fired) with no reading.
    threshold_action on_time(const threshold_params& p, std::int64_t now_ms) noexcept {
        if (phase != threshold_phase::pending || now_ms < pending_since_ms + p.for_ms) return threshold_action::none;
        phase = threshold_phase::firing;
        return threshold_action::open;
    }

    // When the pending episode would open (meaningful while pending).
    std::int64_t due_ms(const threshold_params& p) const noexcept { return pending_since_ms + p.for_ms; }
};

} // namespace pulsegate::engine
