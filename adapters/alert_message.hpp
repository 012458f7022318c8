#pragma once
// An alert event as the adapters see it: the event JSON exactly as the
// engine made it (engine/alert_event.hpp event_json: {"event", "tenant",
// "at", "alert": {...}}), plus the fields templates, traps and the
// Alertmanager format need, read from it once.

#include <boost/system/result.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pulsegate::adapters {

struct alert_message {
    std::int64_t job_id = 0;  // the outbox job: the receiver's idempotency key; 0 for a test send
    bool test = false;        // a synthetic alert from POST /api/v1/integrations/{id}/test
    std::string payload;      // the event JSON, sent as is by webhook (pulsegate format) and MQTT

    // alert.opened | alert.acknowledged | alert.escalated | alert.closed, or
    // digest (engine/digest.hpp: no alert; the summary is in the payload,
    // the fields below stay empty)
    std::string event;
    std::string tenant;
    std::string at;           // RFC 3339, when the event happened
    std::int64_t at_ms = 0;
    std::int64_t alert_id = 0;
    std::string device;
    std::int64_t rule_id = 0;
    std::string rule_name;
    std::string kind;         // THRESHOLD | NO_HEARTBEAT
    std::string severity;     // critical | major | minor | warning | info
    std::string status;       // open | acknowledged | closed
    std::string metric;       // "" for NO_HEARTBEAT
    std::optional<double> value;
    std::optional<double> threshold;
    std::string message;
    std::string opened_at;    // RFC 3339
    std::string closed_at;    // RFC 3339, "" while not closed
    std::int64_t escalation_level = 0;
    std::map<std::string, std::string> labels; // the device's labels
};

// Reads an event JSON (an alert event or a digest). Error
// (invalid_argument) when it is not one.
boost::system::result<alert_message> parse_alert_message(std::string_view payload);

// "{severity} on {device_id}: ..." templates: replaces {severity},
// {alert_type} (the kind), {device_id}, {metric}, {value}, {threshold},
// {message}, {timestamp} (RFC 3339 of the event), {event}, {rule},
// {status}, {tenant} and {alert_id}; unknown names stay as written. With
// `escape_html`, substituted values are HTML-escaped (the template is not).
std::string render_template(std::string_view tmpl, const alert_message& m, bool escape_html = false);

// A number as templates and traps show it: shortest round-trip form, "" if none.
std::string format_value(const std::optional<double>& v);

// `s` with & < > " ' as HTML entities.
std::string escape_html(std::string_view s);

} // namespace pulsegate::adapters
