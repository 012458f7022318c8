#pragma once
// Alerts (alert_model.hpp). The engine owns their lifecycle and writes them
// in batches (upsert); the REST API reads them. At most one non-closed
// alert per (tenant, device, rule) (schema: partial unique index).
//
// Thread safety: as database (any thread; blocking).

#include "storage/state/alert_model.hpp"
#include "storage/state/delivery_model.hpp"
#include "storage/state/database.hpp"
#include "storage/state/error.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::storage::state {

// `{}` initializers: designated initializers may name only some members
// without -Wmissing-field-initializers (as device_update).
struct alert_filter {
    std::optional<alert_status> status{};
    std::optional<severity> sev{};
    std::optional<std::string> device{};
    std::optional<alert_kind> kind{};
    std::optional<std::int64_t> rule{};
    std::optional<std::int64_t> from_ms{}; // opened_at >= from
    std::optional<std::int64_t> to_ms{};   // opened_at < to
};

struct alert_page {
    std::vector<alert_record> items;
    std::optional<std::string> next_cursor;
};

struct alert_day {
    std::int64_t day_start_ms = 0; // UTC midnight
    std::int64_t opened = 0;
    std::int64_t closed = 0;
};

struct alert_stats {
    std::map<severity, std::int64_t> open_by_severity; // non-closed alerts (open or acknowledged)
    std::vector<alert_day> per_day;                   // oldest first, `days` entries (zeros included)
    std::optional<double> mean_time_to_ack_s;         // over alerts opened in the window and acknowledged
    std::optional<double> mean_time_to_close_s;       // over alerts opened in the window and closed
};

// What happened to a tenant's alerts over a period (the daily digest).
struct alert_summary {
    std::int64_t opened = 0;                          // opened in [from, to)
    std::int64_t closed = 0;                          // closed in [from, to)
    std::map<severity, std::int64_t> open_by_severity; // not closed now (zeros included)
    struct device_count {
        std::string device;
        std::int64_t alerts = 0; // opened in the period
        std::int64_t repeats = 0; // their readings that repeated the condition
    };
    struct rule_count {
        std::int64_t rule = 0;
        std::string name;
        std::int64_t alerts = 0;
        std::int64_t repeats = 0;
    };
    std::vector<device_count> noisiest_devices; // most alerts first, at most `top`
    std::vector<rule_count> noisiest_rules;
};

class alert_repository {
public:
    explicit alert_repository(database& db) noexcept : db_(&db) {}

    // Inserts or replaces every alert by id (all fields), and inserts the
    // delivery jobs of their events, in one transaction: an event is never
    // recorded without its jobs. A job whose (event_key, integration) exists
    // already, or whose integration is gone, is skipped.
    state_result<void> upsert(std::span<const alert_record> alerts, std::span<const new_delivery_job> jobs = {});
    state_result<std::optional<alert_record>> get(std::string_view tenant, std::int64_t id) const;
    // Newest first (by id, descending), `limit` clamped to 1..1000.
    state_result<alert_page> list(std::string_view tenant, const alert_filter& f, std::size_t limit = 100,
                                  std::optional<std::string_view> cursor = std::nullopt) const;
    // Operators: every tenant's (or only `tenant`'s), newest first.
    state_result<alert_page> list_all(const alert_filter& f, std::size_t limit = 100,
                                      std::optional<std::string_view> cursor = std::nullopt,
                                      std::optional<std::string_view> tenant = std::nullopt) const;
    // Every open or acknowledged alert (the engine, at start).
    state_result<std::vector<alert_record>> non_closed() const;
    // The largest id ever stored (0: none).
    state_result<std::int64_t> max_id() const;
    // Deletes closed alerts closed before `before_ms`; returns how many.
    state_result<std::int64_t> purge_closed_before(std::int64_t before_ms);
    // The last `days` UTC days up to and including the one holding `now_ms`.
    state_result<alert_stats> stats(std::string_view tenant, std::int64_t now_ms, int days = 7) const;
    // Alerts opened and closed in [from_ms, to_ms), those not closed now,
    // and the `top` devices and rules that opened the most (ties: more
    // repeats first, then by name or id).
    state_result<alert_summary> summary(std::string_view tenant, std::int64_t from_ms, std::int64_t to_ms,
                                        std::size_t top = 5) const;

private:
    database* db_;
};

} // namespace pulsegate::storage::state
