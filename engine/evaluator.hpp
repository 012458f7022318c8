#pragma once
// The rules engine's state and decisions, without threads or I/O: rules
// indexed by (tenant, metric), per (rule, device) state, every non-closed
// alert, silences, device labels and liveness, and one timer wheel for
// `for_s`, heartbeat deadlines and escalation. rules_engine drives it from
// one thread; tests drive it directly with their own clock.
//
// Every call takes `now_ms` (epoch ms): the evaluator never reads a clock.
// Outputs are collected for the caller: events() (opened, acknowledged,
// escalated, closed, in order), take_dirty() (alerts whose count or last
// value changed without an event) and take_liveness() (devices whose last
// message time changed).
//
// Heartbeat deadlines (documented in the README, "Rules and alerts"):
//   deadline = max(counting_from + interval_s * missed, not_before)
//   counting_from = the device's last message; for a device never heard
//     from, when it was registered (or first seen); never earlier than the
//     rule's last change (a new or edited rule starts counting afresh);
//   not_before = the engine's start + heartbeat_grace (after a restart every
//     device gets the grace period to report before it is declared silent;
//     a device already alerted before the restart stays alerted).
// So a registered device that never sends anything does open NO_HEARTBEAT.
//
// Allocation: evaluating a reading of a known device against rules whose
// state does not change allocates nothing; new devices, new (rule, device)
// pairs, opening alerts and events do.

#include "engine/alert_event.hpp"
#include "engine/threshold.hpp"
#include "engine/timer_wheel.hpp"
#include "storage/state/alert_model.hpp"

#include <boost/system/result.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pulsegate::engine {

namespace st = storage::state;

struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class V>
using string_map = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;
// Open addressing, for the maps looked up on every reading.
template <class V>
using string_flat_map = boost::unordered_flat_map<std::string, V, string_hash, std::equal_to<>>;

// What ingest may hand over, per tenant: the metrics some threshold rule
// watches (interned ids) and whether any heartbeat rule needs every
// message. An immutable snapshot, rebuilt when rules change.
struct interest {
    struct tenant {
        string_flat_map<std::uint32_t> metrics;
        bool heartbeat = false;
    };
    string_flat_map<tenant> tenants;
};

struct evaluator_options {
    std::int64_t heartbeat_grace_ms = 120'000;
    std::int64_t tick_ms = 100;
};

struct evaluator_stats {
    std::uint64_t readings = 0;     // metric values evaluated
    std::uint64_t evaluations = 0;  // (rule, reading) pairs checked
    std::uint64_t messages = 0;     // liveness updates
    std::uint64_t opened = 0, closed = 0, escalated = 0, acknowledged = 0;
    std::uint64_t timers_fired = 0;
    std::size_t timers = 0;
    std::size_t open_alerts = 0;
    std::size_t devices = 0;
};

class evaluator {
public:
    // `next_alert_id`: ids of new alerts start there (above every stored one).
    evaluator(evaluator_options o, std::int64_t now_ms, std::int64_t next_alert_id);
    ~evaluator();
    evaluator(const evaluator&) = delete;
    evaluator& operator=(const evaluator&) = delete;

    // ---- loading (start, then on every change) ------------------------------
    // At start, before set_rules: the alerts that were not closed and when
    // devices last sent something.
    void restore(std::span<const st::alert_record> non_closed, std::span<const st::liveness_record> seen);
    // The registered devices of a tenant (replaces the tenant's labels;
    // devices no longer listed keep their state but lose their labels).
    struct registered_device {
        std::string id;
        st::label_map labels;
        std::int64_t created_at_ms = 0;
    };
    void set_devices(std::string_view tenant, std::span<const registered_device> devices, std::int64_t now_ms);
    // Replaces a tenant's rules. Alerts of rules that are gone or disabled,
    // or whose device left the scope, close (automatically); pending
    // episodes of changed rules restart.
    void set_rules(std::string_view tenant, std::span<const st::rule_record> rules, std::int64_t now_ms);
    void set_silences(std::string_view tenant, std::span<const st::silence_record> silences);
    // At start, after restore(): a tenant's devices, rules and silences at
    // once, so that restored alerts are judged against all of them.
    void load_tenant(std::string_view tenant, std::span<const registered_device> devices,
                     std::span<const st::rule_record> rules, std::span<const st::silence_record> silences,
                     std::int64_t now_ms);

    // The ingest filter for the current rules.
    std::shared_ptr<const interest> make_interest() const;
    // The interned id of a metric (interest::tenant::metrics), for tests.
    std::optional<std::uint32_t> metric_id(std::string_view metric) const;

    // ---- input ----------------------------------------------------------------
    // Any message of a device (telemetry or heartbeat): liveness.
    void on_message(std::string_view tenant, std::string_view device, std::int64_t now_ms);
    // One metric value of a reading (after on_message for the same message).
    void on_reading(std::string_view tenant, std::string_view device, std::uint32_t metric, double value,
                    std::int64_t now_ms);
    // Both at once, as rules_engine hands a message over: liveness (when
    // `liveness`) and every (metric id, value).
    void on_readings(std::string_view tenant, std::string_view device, bool liveness,
                     std::span<const std::pair<std::uint32_t, double>> values, std::int64_t now_ms);
    // Fires due timers.
    void tick(std::int64_t now_ms);

    boost::system::result<st::alert_record> acknowledge(std::string_view tenant, std::int64_t id, std::string_view user,
                                                        std::int64_t now_ms);
    boost::system::result<st::alert_record> close(std::string_view tenant, std::int64_t id, std::string_view user,
                                                  std::int64_t now_ms);
    boost::system::result<st::alert_record> live(std::string_view tenant, std::int64_t id) const;
    // Non-closed alerts in memory.
    std::vector<st::alert_record> active_alerts() const;

    // ---- output ---------------------------------------------------------------
    std::vector<alert_event>& events() noexcept { return events_; }
    void take_dirty(std::vector<st::alert_record>& out);
    void take_liveness(std::vector<st::liveness_record>& out);

    evaluator_stats stats() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
    std::vector<alert_event> events_;
};

} // namespace pulsegate::engine
