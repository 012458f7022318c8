#include "engine/dry_run.hpp"

#include "engine/threshold.hpp"

namespace pulsegate::engine {

namespace {

using storage::state::rule_kind;

std::vector<dry_run_alert> threshold_run(const storage::state::rule_record& rule, std::span<const sample> samples,
                                         std::int64_t end_ms) {
    const auto p = threshold_params::of(rule);
    threshold_state st;
    std::vector<dry_run_alert> out;
    auto open = [&](std::int64_t at) { out.push_back({at, st.first_value, std::nullopt, std::nullopt, 1}); };
    for (const auto& s : samples) {
        // The live engine's timer would have opened the alert at the due
        // time, before this reading arrived.
        if (st.phase == threshold_phase::pending && s.ts_ms >= st.due_ms(p) &&
            st.on_time(p, st.due_ms(p)) == threshold_action::open)
            open(st.due_ms(p));
        switch (st.on_reading(p, s.value, s.ts_ms)) {
        case threshold_action::open: open(s.ts_ms); break;
        case threshold_action::repeat: ++out.back().count; break;
        case threshold_action::close:
            out.back().closed_at_ms = s.ts_ms;
            out.back().close_value = s.value;
            break;
        case threshold_action::none:
        case threshold_action::arm: break;
        }
    }
    if (st.phase == threshold_phase::pending && end_ms >= st.due_ms(p)) open(st.due_ms(p));
    return out;
}

std::vector<dry_run_alert> heartbeat_run(const storage::state::rule_record& rule, std::span<const sample> samples,
                                         std::int64_t end_ms) {
    const std::int64_t timeout = rule.interval_s * rule.missed * 1000;
    std::vector<dry_run_alert> out;
    if (timeout <= 0) return out;
    for (std::size_t i = 0; i < samples.size(); ++i) {
        const auto last = samples[i].ts_ms;
        const bool has_next = i + 1 < samples.size();
        const auto next = has_next ? samples[i + 1].ts_ms : end_ms;
        if (next - last < timeout) continue; // the live timer fires at last + timeout
        dry_run_alert a{last + timeout, 0, std::nullopt, std::nullopt, 1};
        if (has_next) {
            a.closed_at_ms = next;
            a.close_value = samples[i + 1].value;
        }
        out.push_back(a);
    }
    return out;
}

} // namespace

std::vector<dry_run_alert> dry_run(const storage::state::rule_record& rule, std::span<const sample> samples,
                                   std::int64_t end_ms) {
    return rule.kind == rule_kind::threshold ? threshold_run(rule, samples, end_ms)
                                             : heartbeat_run(rule, samples, end_ms);
}

} // namespace pulsegate::engine
