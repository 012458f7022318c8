#pragma once
// Dry run of a threshold rule (POST /api/v1/rules/test): replays stored
// readings of one device through the same state machine the live engine
// uses and reports when alerts would have opened and closed. Pure: nothing
// is saved, published or routed.

#include "storage/state/alert_model.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace pulsegate::engine {

struct sample {
    std::int64_t ts_ms = 0;
    double value = 0;
};

struct dry_run_alert {
    std::int64_t opened_at_ms = 0;
    double value = 0;                         // the reading that opened it (for_s: the first breaching one)
    std::optional<std::int64_t> closed_at_ms; // none: still open at the end of the samples
    std::optional<double> close_value;
    std::int64_t count = 0;                   // readings while open
};

// `samples` in time order. Heartbeat rules: an alert for every gap longer
// than interval_s * missed between samples (and from the last sample to
// `end_ms`).
std::vector<dry_run_alert> dry_run(const storage::state::rule_record& rule, std::span<const sample> samples,
                                   std::int64_t end_ms);

} // namespace pulsegate::engine
