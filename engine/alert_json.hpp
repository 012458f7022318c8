#pragma once
// The JSON shape of an alert (DESIGN.md, Resource shapes), one for every
// place that shows one: the REST API (GET /api/v1/alerts...), the MQTT alert
// events and the UI live feed.
//
//   {"id", "tenant", "device", "rule", "rule_name",
//    "kind": "THRESHOLD"|"NO_HEARTBEAT", "severity", "status": "open"|"acknowledged"|"closed",
//    "metric" (null for NO_HEARTBEAT), "value", "threshold", "last_value", "message",
//    "opened_at", "last_seen_at", "acknowledged_at", "acknowledged_by",
//    "closed_at", "closed_by", "close_reason": "auto"|"manual"|null,
//    "count", "escalation_level", "escalated_at", "silenced"}
//
// Times are RFC 3339 UTC with milliseconds; what has not happened is null,
// and so is a number that is absent or not finite (JSON has no NaN).
// close_reason: "manual" when a user closed it (closed_by), "auto" when the
// condition cleared, null while not closed.

#include "storage/state/alert_model.hpp"

#include <boost/json/object.hpp>

namespace pulsegate::engine {

boost::json::object alert_json(const storage::state::alert_record& a);

} // namespace pulsegate::engine
