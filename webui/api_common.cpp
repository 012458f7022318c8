#include "webui/api_common.hpp"

#include "webui/json_body.hpp"

#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <cstdio>

namespace pulsegate::webui::detail {

namespace {

namespace state = storage::state;

// Days since 1970-01-01 of a civil date, and back (H. Hinnant's algorithms):
// exact for every date of the proleptic Gregorian calendar.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct civil {
    std::int64_t y;
    unsigned m, d;
};

civil civil_from_days(std::int64_t z) {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2), m, d};
}

unsigned days_in_month(std::int64_t y, unsigned m) {
    static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

// Exactly `n` digits at `p` of `s` as a number, or -1.
int digits(std::string_view s, std::size_t p, std::size_t n) {
    if (p + n > s.size()) return -1;
    int v = 0;
    for (std::size_t i = p; i < p + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

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

std::int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string rfc3339(std::int64_t epoch_ms) {
    // Floor division, so that times before 1970 format too.
    std::int64_t days = epoch_ms / 86400000;
    std::int64_t rest = epoch_ms % 86400000;
    if (rest < 0) {
        rest += 86400000;
        --days;
    }
    const auto c = civil_from_days(days);
    const auto ms = static_cast<int>(rest % 1000);
    const auto secs = static_cast<int>(rest / 1000);
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<long long>(c.y), c.m, c.d,
                  secs / 3600, secs / 60 % 60, secs % 60, ms);
    return buf;
}

json::value rfc3339_or_null(const std::optional<std::int64_t>& epoch_ms) {
    if (!epoch_ms) return nullptr;
    return json::value(rfc3339(*epoch_ms));
}

std::optional<std::int64_t> parse_rfc3339(std::string_view s) {
    // 2026-11-23T12:00:00 is 19 characters; then a fraction, then the zone.
    const int y = digits(s, 0, 4), mo = digits(s, 5, 2), d = digits(s, 8, 2);
    const int h = digits(s, 11, 2), mi = digits(s, 14, 2), sec = digits(s, 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
        return std::nullopt;
    if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
        return std::nullopt;
    if (static_cast<unsigned>(d) > days_in_month(y, static_cast<unsigned>(mo))) return std::nullopt;
    std::size_t p = 19;
    std::int64_t ms = 0;
    if (p < s.size() && s[p] == '.') {
        ++p;
        const std::size_t start = p;
        int scale = 100;
        while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
            ms += (s[p] - '0') * scale;
            scale /= 10;
            ++p;
        }
        if (p == start) return std::nullopt;
    }
    std::int64_t offset_min = 0;
    if (p < s.size() && (s[p] == 'Z' || s[p] == 'z')) {
        ++p;
    } else if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
        const int oh = digits(s, p + 1, 2), om = digits(s, p + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59 || p + 3 >= s.size() || s[p + 3] != ':') return std::nullopt;
        offset_min = (s[p] == '+' ? 1 : -1) * (oh * 60 + om);
        p += 6;
    } else {
        return std::nullopt; // a time without a zone is ambiguous
    }
    if (p != s.size()) return std::nullopt;
    // A leap second (:60) counts as the next second.
    const std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
    const std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    return secs * 1000 + ms;
}

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
