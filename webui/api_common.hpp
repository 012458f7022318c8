#pragma once
// PRIVATE to webui/api_*.cpp: what the REST resources share — reading JSON
// bodies and query parameters with errors that name the field, RFC 3339
// times, storage errors turned into REST errors, and the JSON shape of a
// device (tenant and operator routes show the same one).
//
// Conventions every api_*.cpp route follows (DESIGN.md, Web UI and REST API):
//   - unknown JSON members are ignored; a known member of the wrong type is
//     400 invalid_argument naming it; null counts as absent;
//   - times are RFC 3339 UTC strings with milliseconds in responses
//     ("2026-11-23T12:00:00.123Z"), never-happened times are null;
//   - a storage failure the client can retry (busy, disk full, I/O) is 503
//     unavailable; one it cannot (a bug, a damaged file) is 500 internal,
//     logged with the details the answer leaves out.

#include "engine/identity.hpp"
#include "storage/state/alert_repository.hpp"
#include "storage/state/device_repository.hpp"
#include "storage/state/error.hpp"
#include "webui/api.hpp"
#include "webui/api_error.hpp"
#include "webui/caller.hpp"
#include "webui/request_context.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pulsegate::webui::detail {

namespace json = boost::json;

template <class T>
using api_result = boost::system::result<T, api_error>;

// ---- routes -----------------------------------------------------------------

// The handler shape of every api_*.cpp route.
using api_handler = response (*)(const api_services&, const caller&, const request_context&);
// `fn` behind auth::guard(need); the handler holds its own copy of `s`
// (a few pointers).
handler guarded(auth& a, const api_services& s, access need, api_handler fn);

// ---- time -------------------------------------------------------------------
// Forwards to common/time.hpp (shared with the engine's alert events).

std::int64_t now_ms();
// "2026-11-23T12:00:00.123Z".
std::string rfc3339(std::int64_t epoch_ms);
json::value rfc3339_or_null(const std::optional<std::int64_t>& epoch_ms);
// common::parse_rfc3339: RFC 3339 with a zone to epoch ms, nullopt otherwise.
std::optional<std::int64_t> parse_rfc3339(std::string_view text);

// ---- errors -----------------------------------------------------------------

// 400 naming `field` with the validator's reason.
api_error invalid(std::string_view field, const engine::validation& v);
api_error unavailable(std::string message);
// A storage failure while doing `operation` ("list devices"); see above.
api_error from_state(const storage::state::state_error& e, std::string_view operation);

// The caller's tenant, or 403 for a caller without one (an operator on a
// tenant route; auth::guard already refuses them, this keeps it so).
api_result<std::string> tenant_of(const caller& c);

// ---- input ------------------------------------------------------------------

// The request body as a JSON object (400 naming "body" otherwise).
api_result<json::object> body_object(const request_context& ctx);

// Members of `o`; absent or null answer nullopt.
api_result<std::optional<std::string>> optional_string(const json::object& o, std::string_view field);
api_result<std::optional<bool>> optional_bool(const json::object& o, std::string_view field);
// A finite number (JSON integer or not).
api_result<std::optional<double>> optional_number(const json::object& o, std::string_view field);
// A whole number in [min, max] (2 and 2.0 alike).
api_result<std::optional<std::int64_t>> optional_integer(const json::object& o, std::string_view field,
                                                         std::int64_t min, std::int64_t max);
// A required string member (400 "field is required" when absent or null).
api_result<std::string> required_string(const json::object& o, std::string_view field);
// {"k": "v", ...}: string values, validated with engine::validate_labels.
api_result<std::optional<storage::state::device_labels>> optional_labels(const json::object& o,
                                                                         std::string_view field);

// An integer query parameter in [min, max]; nullopt when absent.
api_result<std::optional<std::int64_t>> query_int64(const request_context& ctx, std::string_view name,
                                                    std::int64_t min, std::int64_t max);

// A path parameter checked with `validator` (an engine::validate_*), 400
// naming `field` otherwise.
api_result<std::string> path_id(const request_context& ctx, std::string_view param, std::string_view field,
                                engine::validation (*validator)(std::string_view));

// A positive whole-number id (rules, alerts, silences) from path parameter
// "id"; 400 naming "id" otherwise. `what` names the resource in the message
// ("rule") and `list` the route that lists them.
api_result<std::int64_t> path_number_id(const request_context& ctx, std::string_view what, std::string_view list);

// The filters of GET /api/v1/alerts and /api/v1/operator/alerts: status,
// severity, device, kind, rule, from and to (epoch ms on opened_at,
// from < to); 400 naming the parameter.
api_result<storage::state::alert_filter> alert_filter_of(const request_context& ctx);

// How a caller signs what it does (acknowledged_by, closed_by, created_by):
// a user's name, or an API token's name.
api_result<std::string> signature_of(storage::state::database& db, const caller& c);

// ---- shapes -----------------------------------------------------------------

// {"id","name","labels","status": "enabled"|"disabled","last_seen","created_at"}
// (+ "tenant" for operator views). Never the secret digest.
json::object device_json(const storage::state::device& d, bool with_tenant = false);

} // namespace pulsegate::webui::detail
