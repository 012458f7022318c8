#include "engine/alert_json.hpp"

#include "common/time.hpp"

#include <cmath>

namespace pulsegate::engine {

namespace {

namespace json = boost::json;

json::value number_or_null(const std::optional<double>& v) {
    if (!v || !std::isfinite(*v)) return nullptr;
    return *v;
}

json::value time_or_null(const std::optional<std::int64_t>& ms) {
    if (!ms) return nullptr;
    return json::value(common::rfc3339(*ms));
}

json::value text_or_null(const std::optional<std::string>& s) {
    if (!s) return nullptr;
    return json::value(*s);
}

} // namespace

json::object alert_json(const storage::state::alert_record& a) {
    using storage::state::alert_status;
    json::object o;
    o["id"] = a.id;
    o["tenant"] = a.tenant;
    o["device"] = a.device;
    o["rule"] = a.rule;
    o["rule_name"] = a.rule_name;
    o["kind"] = to_string(a.kind);
    o["severity"] = to_string(a.sev);
    o["status"] = to_string(a.status);
    o["metric"] = a.metric.empty() ? json::value(nullptr) : json::value(a.metric);
    o["value"] = number_or_null(a.value);
    o["threshold"] = number_or_null(a.threshold);
    o["last_value"] = number_or_null(a.last_value);
    o["message"] = a.message;
    o["opened_at"] = common::rfc3339(a.opened_at_ms);
    o["last_seen_at"] = common::rfc3339(a.last_seen_at_ms);
    o["acknowledged_at"] = time_or_null(a.acknowledged_at_ms);
    o["acknowledged_by"] = text_or_null(a.acknowledged_by);
    o["closed_at"] = time_or_null(a.closed_at_ms);
    o["closed_by"] = text_or_null(a.closed_by);
    if (a.status != alert_status::closed) o["close_reason"] = nullptr;
    else o["close_reason"] = a.closed_by ? "manual" : "auto";
    o["count"] = a.count;
    o["escalation_level"] = a.escalation_level;
    o["escalated_at"] = time_or_null(a.escalated_at_ms);
    o["silenced"] = a.silenced;
    return o;
}

} // namespace pulsegate::engine
