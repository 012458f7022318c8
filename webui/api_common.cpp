#include "webui/api_common.hpp"

#include "webui/json_body.hpp"

#include "common/time.hpp"
#include "storage/state/api_token_repository.hpp"

#include <spdlog/spdlog.h>

#include <charconv>
#include <cmath>
#include <limits>

namespace pulsegate::webui::detail {

handler guarded(auth& a, const api_services& s, access need, api_handler fn) {
    return a.guard(need, [s, fn](const caller& c, const request_context& ctx) { return fn(s, c, ctx); });
}


namespace {

namespace state = storage::state;

std::string json_type_name(const json::value& v) {
    switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_: return "a number";
    case json::kind::string: return "a string";
    case json::kind::array: return "an array";
    case json::kind::object: return "an object";
    }
    return "something else";
}

api_error wrong_type(std::string_view field, std::string_view expected, const json::value& got) {
    return api_error::invalid_argument(std::string(field), std::string(field) + " must be " + std::string(expected) +
                                                               ", not " + json_type_name(got));
}

} // namespace

std::int64_t now_ms() { return common::now_ms(); }

std::string rfc3339(std::int64_t epoch_ms) { return common::rfc3339(epoch_ms); }

json::value rfc3339_or_null(const std::optional<std::int64_t>& epoch_ms) {
    if (!epoch_ms) return nullptr;
    return json::value(common::rfc3339(*epoch_ms));
}

std::optional<std::int64_t> parse_rfc3339(std::string_view text) { return common::parse_rfc3339(text); }

api_error invalid(std::string_view field, const engine::validation& v) {
    return api_error::invalid_argument(std::string(field), v.reason);
}

api_error unavailable(std::string message) {
    return {http::status::service_unavailable, std::string(codes::unavailable), std::move(message), {}};
}

api_error from_state(const state::state_error& e, std::string_view operation) {
    using state::state_errc;
    const std::string op(operation);
    if (e.code == state_errc::not_found) return api_error::not_found(e.message);
    if (e.code == state_errc::already_exists || e.code == state_errc::constraint_violation)
        return api_error::conflict(e.message);
    if (e.code == state_errc::invalid_argument) return api_error::invalid_argument({}, e.message);
    if (e.code == state_errc::busy)
        return unavailable(op + ": the database is busy (another process holds its lock); retry in a moment");
    if (e.code == state_errc::storage_full || e.code == state_errc::io_error || e.code == state_errc::read_only) {
        spdlog::warn("rest {}: {}", op, e.message);
        return unavailable(op + ": the database cannot be written or read now (" + e.message +
                           "); the operator should check the disk, then retry");
    }
    spdlog::error("rest {}: {}", op, e.message);
    return {http::status::internal_server_error, std::string(codes::internal),
            op + " failed with an internal error; the server log has the details", {}};
}

api_result<std::string> tenant_of(const caller& c) {
    if (!c.tenant)
        return api_error{http::status::forbidden, std::string(codes::forbidden),
                         "this route serves tenant users and tenant API tokens; operators use /api/v1/operator/...",
                         {}};
    return *c.tenant;
}

api_result<json::object> body_object(const request_context& ctx) {
    auto v = parse_json_body(ctx);
    if (!v) return v.error();
    if (!v->is_object())
        return api_error::invalid_argument("body", "the request body must be a JSON object, not " +
                                                       json_type_name(*v));
    return std::move(v->as_object());
}

api_result<std::optional<std::string>> optional_string(const json::object& o, std::string_view field) {
    const auto* v = o.if_contains(field);
    if (v == nullptr || v->is_null()) return std::optional<std::string>();
    if (!v->is_string()) return wrong_type(field, "a string", *v);
    return std::optional<std::string>(std::string(v->get_string()));
}

api_result<std::optional<bool>> optional_bool(const json::object& o, std::string_view field) {
    const auto* v = o.if_contains(field);
    if (v == nullptr || v->is_null()) return std::optional<bool>();
    if (!v->is_bool()) return wrong_type(field, "true or false", *v);
    return std::optional<bool>(v->get_bool());
}

api_result<std::optional<double>> optional_number(const json::object& o, std::string_view field) {
    const auto* v = o.if_contains(field);
    if (v == nullptr || v->is_null()) return std::optional<double>();
    if (!v->is_number()) return wrong_type(field, "a number", *v);
    const double d = v->to_number<double>();
    if (!std::isfinite(d))
        return api_error::invalid_argument(std::string(field), std::string(field) + " must be a finite number");
    return std::optional<double>(d);
}

api_result<std::optional<std::int64_t>> optional_integer(const json::object& o, std::string_view field,
                                                         std::int64_t min, std::int64_t max) {
    const auto* v = o.if_contains(field);
    if (v == nullptr || v->is_null()) return std::optional<std::int64_t>();
    const auto out_of_range = [&] {
        return api_error::invalid_argument(std::string(field), std::string(field) + " must be a whole number from " +
                                                                   std::to_string(min) + " to " + std::to_string(max));
    };
    if (!v->is_number()) return wrong_type(field, "a whole number", *v);
    std::int64_t n = 0;
    if (v->is_int64()) {
        n = v->get_int64();
    } else if (v->is_uint64()) {
        if (v->get_uint64() > static_cast<std::uint64_t>(max)) return out_of_range();
        n = static_cast<std::int64_t>(v->get_uint64());
    } else {
        // 60.0 is 60; 60.5, and anything far outside int64, is not.
        const double d = v->get_double();
        if (!std::isfinite(d) || d != std::trunc(d) || d < static_cast<double>(min) || d > static_cast<double>(max))
            return out_of_range();
        n = static_cast<std::int64_t>(d);
    }
    if (n < min || n > max) return out_of_range();
    return std::optional<std::int64_t>(n);
}

api_result<std::string> required_string(const json::object& o, std::string_view field) {
    auto v = optional_string(o, field);
    if (!v) return v.error();
    if (!*v) return api_error::invalid_argument(std::string(field), std::string(field) + " is required");
    return std::move(**v);
}

api_result<std::optional<state::device_labels>> optional_labels(const json::object& o, std::string_view field) {
    const auto* v = o.if_contains(field);
    if (v == nullptr || v->is_null()) return std::optional<state::device_labels>();
    if (!v->is_object()) return wrong_type(field, "an object of strings ({\"site\": \"plant-7\"})", *v);
    state::device_labels out;
    for (const auto& [k, val] : v->get_object()) {
        if (!val.is_string())
            return wrong_type(std::string(field) + "." + std::string(k), "a string", val);
        out.emplace(std::string(k), std::string(val.get_string()));
    }
    if (auto ok = engine::validate_labels(out); !ok) return invalid(field, ok);
    return std::optional<state::device_labels>(std::move(out));
}

api_result<std::optional<std::int64_t>> query_int64(const request_context& ctx, std::string_view name,
                                                    std::int64_t min, std::int64_t max) {
    const auto text = ctx.query_param(name);
    if (!text) return std::optional<std::int64_t>();
    std::int64_t n = 0;
    const auto* end = text->data() + text->size();
    const auto [ptr, ec] = std::from_chars(text->data(), end, n);
    if (text->empty() || ec != std::errc() || ptr != end || n < min || n > max)
        return api_error::invalid_argument(std::string(name), std::string(name) + " must be a whole number from " +
                                                                  std::to_string(min) + " to " + std::to_string(max) +
                                                                  " (got \"" + std::string(text->substr(0, 32)) +
                                                                  "\")");
    return std::optional<std::int64_t>(n);
}

api_result<std::string> path_id(const request_context& ctx, std::string_view param, std::string_view field,
                                engine::validation (*validator)(std::string_view)) {
    const auto id = ctx.path_param(param);
    if (auto ok = validator(id); !ok) return invalid(field, ok);
    return std::string(id);
}

api_result<std::int64_t> path_number_id(const request_context& ctx, std::string_view what, std::string_view list) {
    const auto text = ctx.path_param("id");
    std::int64_t id = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, id);
    if (ec != std::errc() || ptr != end || id <= 0)
        return api_error::invalid_argument("id", std::string(what) + " id must be a positive whole number (as " +
                                                     std::string(list) + " shows them), not \"" +
                                                     std::string(text.substr(0, 32)) + "\"");
    return id;
}

api_result<state::alert_filter> alert_filter_of(const request_context& ctx) {
    // 9999-12-31T23:59:59.999Z: far from overflow, later than any real time.
    constexpr std::int64_t max_time_ms = 253402300799999LL;
    state::alert_filter f;
    if (const auto v = ctx.query_param("status")) {
        f.status = state::parse_alert_status(*v);
        if (!f.status)
            return api_error::invalid_argument("status", "status must be open, acknowledged or closed");
    }
    if (const auto v = ctx.query_param("severity")) {
        f.sev = state::parse_severity(*v);
        if (!f.sev)
            return api_error::invalid_argument("severity",
                                               "severity must be critical, major, minor, warning or info");
    }
    if (const auto v = ctx.query_param("device")) {
        if (auto ok = engine::validate_device_id(*v); !ok) return invalid("device", ok);
        f.device = std::string(*v);
    }
    if (const auto v = ctx.query_param("kind")) {
        f.kind = state::parse_alert_kind(*v);
        if (!f.kind) return api_error::invalid_argument("kind", "kind must be THRESHOLD or NO_HEARTBEAT");
    }
    auto rule = query_int64(ctx, "rule", 1, std::numeric_limits<std::int64_t>::max());
    if (!rule) return rule.error();
    f.rule = *rule;
    auto from = query_int64(ctx, "from", 0, max_time_ms);
    if (!from) return from.error();
    auto to = query_int64(ctx, "to", 0, max_time_ms);
    if (!to) return to.error();
    if (*from && *to && **from >= **to)
        return api_error::invalid_argument("from", "from (" + std::to_string(**from) + ") must be before to (" +
                                                       std::to_string(**to) +
                                                       "); both are epoch milliseconds on opened_at, from "
                                                       "inclusive, to exclusive");
    f.from_ms = *from;
    f.to_ms = *to;
    return f;
}

api_result<std::string> signature_of(state::database& db, const caller& c) {
    if (c.via == caller::method::session) return c.name;
    auto t = state::api_token_repository(db).get(c.tenant, c.name);
    if (!t) return from_state(t.error(), "get API token");
    // Revoked between its check and now: its public id still says who.
    if (!*t) return "token " + c.name;
    return (*t)->name;
}

json::object device_json(const state::device& d, bool with_tenant) {
    json::object o;
    if (with_tenant) o["tenant"] = d.tenant;
    o["id"] = d.id;
    o["name"] = d.name;
    json::object labels;
    for (const auto& [k, v] : d.labels) labels[k] = v;
    o["labels"] = std::move(labels);
    o["status"] = d.disabled ? "disabled" : "enabled";
    o["last_seen"] = rfc3339_or_null(d.last_seen_ms);
    o["created_at"] = rfc3339(d.created_at_ms);
    return o;
}

} // namespace pulsegate::webui::detail
