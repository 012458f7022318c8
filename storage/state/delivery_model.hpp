#pragma once
// Delivery as the state database keeps it (DESIGN.md, Delivery):
// integrations (where alerts go; secret settings sealed at rest), routes
// (which alert events go to which integrations), and the outbox: one job per
// (event, integration) and every attempt at it.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::storage::state {

struct integration_record {
    std::int64_t id = 0;
    std::string tenant;
    std::string name;
    std::string type;      // webhook | snmp | email | mqtt
    std::string config;    // JSON object text: the non-secret settings
    std::string secrets;   // JSON object text: the secret settings, in clear in memory, sealed in the table
    bool enabled = true;
    std::int64_t created_at_ms = 0;
    std::int64_t updated_at_ms = 0;
};

struct route_record {
    std::int64_t id = 0;
    std::string tenant;
    std::string name;
    std::string match;                      // JSON object text: {"events", "min_severity", "kinds", "devices", "labels", "rules"}
    std::vector<std::int64_t> integrations; // ids, ascending
    std::int64_t repeat_s = 0;              // 0: no repeats of still-open alerts
    bool continue_matching = true;          // false: later routes are not considered once this one matched
    bool enabled = true;
    std::int64_t created_at_ms = 0;
    std::int64_t updated_at_ms = 0;
};

enum class job_state : std::uint8_t { pending, in_flight, delivered, dead };
std::string_view to_string(job_state s) noexcept;
std::optional<job_state> parse_job_state(std::string_view s) noexcept;

enum class attempt_outcome : std::uint8_t { delivered, retry, failed };
std::string_view to_string(attempt_outcome o) noexcept;

// A job the router makes; written with its alert (alert_repository::upsert).
struct new_delivery_job {
    std::string tenant;
    std::int64_t alert = 0;
    std::int64_t integration = 0;
    std::string event;      // alert.opened, ...
    std::string event_key;  // "alert:42:opened": with the integration, unique (a second insert is ignored)
    std::string payload;    // the event JSON
    std::int64_t max_attempts = 10;
    std::int64_t created_at_ms = 0;
};

struct delivery_job {
    std::int64_t id = 0;
    std::string tenant;
    std::optional<std::int64_t> alert;
    std::int64_t integration = 0;
    std::string event;
    std::string event_key;
    std::string payload;
    job_state state = job_state::pending;
    std::int64_t attempts = 0;
    std::int64_t max_attempts = 0;
    std::int64_t next_attempt_at_ms = 0;
    std::optional<std::string> last_error;
    std::int64_t created_at_ms = 0;
    std::int64_t updated_at_ms = 0;
};

struct delivery_attempt {
    std::int64_t job = 0;
    std::int64_t attempt = 0; // 1, 2, ...
    std::int64_t started_at_ms = 0;
    std::int64_t latency_ms = 0;
    attempt_outcome outcome = attempt_outcome::retry;
    std::string status;
    std::optional<std::string> error;
};

} // namespace pulsegate::storage::state
