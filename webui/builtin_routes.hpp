#pragma once
// The routes every pulsegate HTTP server has, whatever else it serves:
//
//   GET /healthz               200 {"status": "ok"} while the process serves HTTP
//   GET /readyz                200 {"status": "ready", "checks": [...]} or
//                              503 {"status": "not_ready", "checks": [...]};
//                              each check {"name", "status": "ok"|"failing", "reason"?}
//   GET /metrics               Prometheus text format 0.0.4
//   GET /api/v1/openapi.json   the OpenAPI 3.0 document of the API (openapi.json)
//
// They take no authentication: put the listener where only the operator and
// the monitoring can reach it, or front it with a proxy.

#include "webui/metrics.hpp"
#include "webui/readiness.hpp"
#include "webui/router.hpp"

namespace pulsegate::webui {

// `m` and `checks` must outlive the router.
void register_builtin_routes(router& r, const metrics& m, const readiness& checks);

} // namespace pulsegate::webui
