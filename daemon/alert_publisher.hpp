#pragma once
// Alert events onto MQTT (DESIGN.md, MQTT contract), in the tenant's tree:
//   t/{tenant}/alerts/{device}/{rule}       every event, JSON, QoS 1
//   t/{tenant}/alert-state/{device}/{rule}  retained: the alert while it is
//                                           not closed; cleared on close
// A live sink of the rules engine: it runs on the thread holding the
// evaluator (a shard or the engine thread) and only posts to the broker's
// shards.

#include "engine/alert_event.hpp"

namespace pulsegate::broker {
class server;
}

namespace pulsegate::daemon {

class alert_publisher final : public engine::alert_event_sink {
public:
    explicit alert_publisher(broker::server& server) noexcept : server_(server) {}
    void on_alert_event(const engine::alert_event& e) override;

private:
    broker::server& server_;
};

} // namespace pulsegate::daemon
