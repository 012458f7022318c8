#pragma once
// The REST resources of DESIGN.md (Web UI and REST API): devices (+
// telemetry query and latest), API tokens, rules (+ dry run), alerts,
// silences, and the operator routes (tenants, users, devices, alerts, audit
// log, rejected events), and GET /api/v1/info. Every route goes through auth::guard; tenant routes
// take the tenant from the caller only, and another tenant's ids answer 404
// like unknown ones. Operator routes append their audit entry before they read
// or write anything (no entry, no data: 503).

#include "engine/identity.hpp"
#include "storage/state/database.hpp"
#include "webui/auth.hpp"
#include "webui/identity_hooks.hpp"
#include "webui/router.hpp"

#include <atomic>
#include <functional>
#include <string>
#include <vector>

namespace pulsegate::storage {
class lmdb_store;
}
namespace pulsegate::engine {
class alert_control;
class digest_service;
class job_router;
class outbox;
}
namespace pulsegate::storage::state {
class secret_box;
}
namespace pulsegate::adapters {
class target_guard;
}

namespace pulsegate::webui {

struct api_services {
    storage::state::database* db = nullptr;            // required
    const storage::lmdb_store* telemetry = nullptr;    // required for the telemetry routes
    const engine::server_key* key = nullptr;           // required (device secrets, tokens)
    identity_hooks* hooks = nullptr;                   // may be null (tests without MQTT)
    // The rules engine. Null (tests without an engine): rule and silence
    // writes still go to the database but nobody is told; alert ack/close
    // answer 503; an alert is read from the database only.
    engine::alert_control* alerts = nullptr;
    // Delivery. Without `secrets` the integration routes answer 503; without
    // `guard` destinations are not checked (tests); without `outbox` a test
    // send answers 503; the router, when set, rereads routes after a change.
    const storage::state::secret_box* secrets = nullptr;
    const adapters::target_guard* guard = nullptr;
    engine::outbox* outbox = nullptr;
    engine::job_router* router = nullptr;
    // The daily digest; null: its routes answer 503.
    engine::digest_service* digest = nullptr;
    // [quotas] devices: devices a tenant may have (0 or null: no limit).
    const std::atomic<std::int64_t>* device_quota = nullptr;
};

void add_device_routes(router& r, auth& a, const api_services& s);   // webui/api_devices.cpp
void add_token_routes(router& r, auth& a, const api_services& s);    // webui/api_tokens.cpp
void add_operator_routes(router& r, auth& a, const api_services& s); // webui/api_operator.cpp
void add_rule_routes(router& r, auth& a, const api_services& s);     // webui/api_rules.cpp
void add_alert_routes(router& r, auth& a, const api_services& s);    // webui/api_alerts.cpp
void add_silence_routes(router& r, auth& a, const api_services& s);  // webui/api_silences.cpp
void add_integration_routes(router& r, auth& a, const api_services& s); // webui/api_integrations.cpp
void add_digest_routes(router& r, auth& a, const api_services& s);      // webui/api_digest.cpp

// What GET /api/v1/info tells a signed-in user (webui/api_info.cpp).
struct server_info {
    std::string version;
    std::vector<std::string> mqtt;  // "address:port" of the MQTT TCP listeners
    std::vector<std::string> mqtts; // of the MQTT TLS listeners
    std::string mqtt_websocket_path = "/mqtt"; // on this HTTP listener
    bool https = false;
};
// `info` is asked on every request (listeners bound after the routes were
// made are shown).
void add_info_route(router& r, auth& a, std::function<server_info()> info);

} // namespace pulsegate::webui
