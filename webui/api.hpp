#pragma once
// The REST resources of DESIGN.md (Web UI and REST API) that belong to
// identity and telemetry: devices (+ telemetry query and latest), API
// tokens, and the operator routes (tenants, users, devices, audit log,
// rejected events). Every route goes through auth::guard; tenant routes take
// the tenant from the caller only, and another tenant's ids answer 404 like
// unknown ones. Operator routes append their audit entry before they read
// or write anything (no entry, no data: 503).

#include "engine/identity.hpp"
#include "storage/state/database.hpp"
#include "webui/auth.hpp"
#include "webui/identity_hooks.hpp"
#include "webui/router.hpp"

namespace pulsegate::storage {
class lmdb_store;
}

namespace pulsegate::webui {

struct api_services {
    storage::state::database* db = nullptr;            // required
    const storage::lmdb_store* telemetry = nullptr;    // required for the telemetry routes
    const engine::server_key* key = nullptr;           // required (device secrets, tokens)
    identity_hooks* hooks = nullptr;                   // may be null (tests without MQTT)
};

void add_device_routes(router& r, auth& a, const api_services& s);   // webui/api_devices.cpp
void add_token_routes(router& r, auth& a, const api_services& s);    // webui/api_tokens.cpp
void add_operator_routes(router& r, auth& a, const api_services& s); // webui/api_operator.cpp

} // namespace pulsegate::webui
