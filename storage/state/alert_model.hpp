#pragma once
// The vocabulary of rules, alerts and silences (DESIGN.md, Rules and
// alerts) as stored: the engine evaluates these records, the REST API shows
// them, the repositories keep them. Names are the ones of the REST API and
// the schema ("threshold", ">=", "critical", "NO_HEARTBEAT", "open").

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pulsegate::storage::state {

enum class rule_kind { threshold, heartbeat };
enum class compare_op { gt, lt, ge, le, eq, ne };
// Most severe first: a smaller value is more severe.
enum class severity { critical, major, minor, warning, info };
enum class alert_kind { threshold, no_heartbeat };
enum class alert_status { open, acknowledged, closed };

std::string_view to_string(rule_kind k) noexcept;      // "threshold" | "heartbeat"
std::string_view to_string(compare_op o) noexcept;     // ">" "<" ">=" "<=" "==" "!="
std::string_view to_string(severity s) noexcept;       // "critical" ... "info"
std::string_view to_string(alert_kind k) noexcept;     // "THRESHOLD" | "NO_HEARTBEAT"
std::string_view to_string(alert_status s) noexcept;   // "open" | "acknowledged" | "closed"
// The inverse of to_string; nullopt for anything else (case-sensitive).
std::optional<rule_kind> parse_rule_kind(std::string_view s) noexcept;
std::optional<compare_op> parse_compare_op(std::string_view s) noexcept;
std::optional<severity> parse_severity(std::string_view s) noexcept;
std::optional<alert_kind> parse_alert_kind(std::string_view s) noexcept;
std::optional<alert_status> parse_alert_status(std::string_view s) noexcept;

using label_map = std::map<std::string, std::string>;

// Which devices of the tenant a rule watches: one device, every device
// carrying all of `labels`, or (both empty) every device.
struct rule_scope {
    std::optional<std::string> device;
    label_map labels;
    friend bool operator==(const rule_scope&, const rule_scope&) = default;
};

struct rule_record {
    std::int64_t id = 0; // assigned by create()
    std::string tenant;
    std::string name;
    std::string description;
    rule_kind kind = rule_kind::threshold;
    bool enabled = true;
    severity sev = severity::warning;
    rule_scope scope;
    // threshold
    std::string metric;
    compare_op op = compare_op::gt;
    double value = 0;
    std::int64_t for_s = 0;
    std::optional<double> clear_value;
    // heartbeat
    std::int64_t interval_s = 0;
    std::int64_t missed = 0;
    // Unacknowledged this long after opening (and again every as long):
    // escalation level + 1 and an alert.escalated event. None: never.
    std::optional<std::int64_t> escalate_after_s;
    std::int64_t created_at_ms = 0;
    std::int64_t updated_at_ms = 0;
    friend bool operator==(const rule_record&, const rule_record&) = default;
};

struct alert_record {
    std::int64_t id = 0; // chosen by the engine (ids grow; see alert_repository::max_id)
    std::string tenant;
    std::string device;
    std::int64_t rule = 0;
    std::string rule_name;
    alert_kind kind = alert_kind::threshold;
    severity sev = severity::warning;
    alert_status status = alert_status::open;
    std::string metric;                  // empty for NO_HEARTBEAT
    std::optional<double> value;         // the reading that opened it
    std::optional<double> threshold;     // the rule's value (NO_HEARTBEAT: none)
    std::optional<double> last_value;    // the latest reading while it was not closed
    std::string message;
    std::int64_t count = 1;              // readings/repeats since it opened
    std::int64_t opened_at_ms = 0;
    std::int64_t last_seen_at_ms = 0;    // latest reading or repeat
    std::optional<std::int64_t> acknowledged_at_ms;
    std::optional<std::string> acknowledged_by;
    std::optional<std::int64_t> closed_at_ms;
    std::optional<std::string> closed_by; // closed manually by this user; none + closed: automatically
    std::int64_t escalation_level = 0;
    std::optional<std::int64_t> escalated_at_ms;
    bool silenced = false;               // a silence matched when it last changed
    friend bool operator==(const alert_record&, const alert_record&) = default;
};

// Every present matcher must match (an empty silence matches everything of
// its tenant). Labels: the device carries every pair.
struct silence_matchers {
    std::optional<std::string> device;
    label_map labels;
    std::optional<std::int64_t> rule;
    std::optional<alert_kind> kind;
    std::optional<severity> sev;
    friend bool operator==(const silence_matchers&, const silence_matchers&) = default;
};

struct silence_record {
    std::int64_t id = 0; // assigned by create()
    std::string tenant;
    silence_matchers matchers;
    std::string comment;
    std::string created_by;
    std::int64_t starts_at_ms = 0;
    std::int64_t ends_at_ms = 0; // > starts_at_ms
    std::int64_t created_at_ms = 0;
    friend bool operator==(const silence_record&, const silence_record&) = default;
};

// When a device last sent anything (liveness_repository).
struct liveness_record {
    std::string tenant;
    std::string device;
    std::int64_t last_message_ms = 0;
    friend bool operator==(const liveness_record&, const liveness_record&) = default;
};

} // namespace pulsegate::storage::state
