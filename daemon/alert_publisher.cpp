#include "daemon/alert_publisher.hpp"

#include "broker/server.hpp"
#include "common/json_text.hpp"
#include "engine/alert_json.hpp"

#include <fmt/format.h>

namespace pulsegate::daemon {

void alert_publisher::on_alert_event(const engine::alert_event& e) {
    const auto& a = e.alert;
    server_.publish(fmt::format("t/{}/alerts/{}/{}", a.tenant, a.device, a.rule), engine::event_json(e), 1, false);
    // An empty retained payload removes the retained message (MQTT 3.3.1.3).
    auto state = a.status == storage::state::alert_status::closed ? std::string()
                                                                  : common::to_json_text(engine::alert_json(a));
    server_.publish(fmt::format("t/{}/alert-state/{}/{}", a.tenant, a.device, a.rule), std::move(state), 1, true);
}

} // namespace pulsegate::daemon
