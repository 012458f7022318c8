#pragma once
// Alert events (DESIGN.md, Rules and alerts): what the engine tells the
// rest of pulsegate when an alert opens, is acknowledged, escalates or
// closes. `alert` is the alert as it is after the change.

#include "storage/state/alert_model.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace pulsegate::engine {

enum class alert_event_type : std::uint8_t { opened, acknowledged, escalated, closed };

// "alert.opened", "alert.acknowledged", "alert.escalated", "alert.closed".
std::string_view to_string(alert_event_type t) noexcept;

struct alert_event {
    alert_event_type type = alert_event_type::opened;
    std::int64_t at_ms = 0;
    storage::state::alert_record alert;
    storage::state::label_map labels; // the device's labels (routes match on them)
};

// The JSON of an event: {"event", "tenant", "at", "alert": {...}} (the
// alert as engine/alert_json.hpp shows it), as published on MQTT and, later,
// posted to webhooks.
std::string event_json(const alert_event& e);

// Receives alert events. Which thread calls, and when, is said where a sink
// is registered (rules_engine); a sink must never block.
class alert_event_sink {
public:
    virtual ~alert_event_sink() = default;
    virtual void on_alert_event(const alert_event& e) = 0;
};

} // namespace pulsegate::engine
