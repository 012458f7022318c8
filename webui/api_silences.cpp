// Silences of the caller's tenant (DESIGN.md, Rules and alerts): alerts
// matching them are muted (still recorded and shown, "silenced": true, but
// not delivered) while the window lasts.
//
//   GET    /api/v1/silences?active=true|false&limit=&cursor=   by id; active: window holds now (or not)
//   POST   /api/v1/silences                                    -> 201 silence
//   DELETE /api/v1/silences/{id}                               204
//
// POST {"matchers": {"device"?, "labels"?, "rule"?, "kind"?, "severity"?},
//       "comment"?, "starts_at"? (RFC 3339, default now),
//       "ends_at" (RFC 3339) | "duration_s" (1..31622400, from starts_at)}
// Every matcher given must match; "matchers" is required, and {} (mute
// everything of the tenant) must be said explicitly. The rule must be one of
// the tenant's. created_by is the caller's user name or API token name.
// A silence is
//   {"id", "matchers", "comment", "starts_at", "ends_at", "created_by", "created_at", "active"}
// with only the matchers it has. Writes tell the engine
// (alert_control::silences_changed).

#include "webui/api.hpp"
#include "webui/api_common.hpp"
#include "webui/pagination.hpp"

#include "engine/alert_control.hpp"
#include "storage/state/rule_repository.hpp"
#include "storage/state/silence_repository.hpp"

#include <boost/json/array.hpp>

#include <limits>

namespace pulsegate::webui {

namespace {

namespace state = storage::state;
using namespace detail;

constexpr std::size_t max_comment_bytes = 1024;
constexpr std::int64_t max_duration_s = 366LL * 24 * 3600;
// 9999-12-31T23:59:59.999Z.
constexpr std::int64_t max_time_ms = 253402300799999LL;
// active=false filters in the route: it reads at most this many silences per
// request; a page that is not full by then comes back shorter, with a cursor.
constexpr std::size_t max_filter_scan = 10000;

api_error no_silence(std::int64_t id) {
    return api_error::not_found("no silence " + std::to_string(id) +
                                " in your tenant; GET /api/v1/silences lists the silences you have");
}

bool active_at(const state::silence_record& s, std::int64_t now) {
    return s.starts_at_ms <= now && now < s.ends_at_ms;
}

json::object silence_json(const state::silence_record& s, std::int64_t now) {
    json::object m;
    if (s.matchers.device) m["device"] = *s.matchers.device;
    if (!s.matchers.labels.empty()) {
        json::object labels;
        for (const auto& [k, v] : s.matchers.labels) labels[k] = v;
        m["labels"] = std::move(labels);
    }
    if (s.matchers.rule) m["rule"] = *s.matchers.rule;
    if (s.matchers.kind) m["kind"] = state::to_string(*s.matchers.kind);
    if (s.matchers.sev) m["severity"] = state::to_string(*s.matchers.sev);
    json::object o;
    o["id"] = s.id;
    o["matchers"] = std::move(m);
    o["comment"] = s.comment;
    o["starts_at"] = rfc3339(s.starts_at_ms);
    o["ends_at"] = rfc3339(s.ends_at_ms);
    o["created_by"] = s.created_by;
    o["created_at"] = rfc3339(s.created_at_ms);
    o["active"] = active_at(s, now);
    return o;
}

api_result<std::optional<std::int64_t>> time_member(const json::object& body, std::string_view field) {
    auto text = optional_string(body, field);
    if (!text) return text.error();
    if (!*text) return std::optional<std::int64_t>();
    const auto at = parse_rfc3339(**text);
    if (!at || *at < 0 || *at > max_time_ms)
        return api_error::invalid_argument(std::string(field), std::string(field) +
                                                                   " must be an RFC 3339 time such as "
                                                                   "\"2026-11-23T12:00:00Z\"");
    return at;
}

api_result<state::silence_matchers> parse_matchers(const api_services& s, std::string_view tenant,
                                                   const json::object& body) {
    const auto* v = body.if_contains("matchers");
    if (v == nullptr || v->is_null())
        return api_error::invalid_argument("matchers", "matchers is required: which alerts to mute, e.g. "
                                                       "{\"device\": \"dev-1\"}; {} mutes every alert of your tenant");
    if (!v->is_object())
        return api_error::invalid_argument("matchers", "matchers must be an object with any of device, labels, "
                                                       "rule, kind and severity");
    const auto& o = v->get_object();
    state::silence_matchers m;
    if (const auto* d = o.if_contains("device"); d != nullptr && !d->is_null()) {
        if (!d->is_string())
            return api_error::invalid_argument("matchers.device", "matchers.device must be a device id (a string)");
        if (auto ok = engine::validate_device_id(d->get_string()); !ok) return invalid("matchers.device", ok);
        m.device = std::string(d->get_string());
    }
    if (const auto* l = o.if_contains("labels"); l != nullptr && !l->is_null()) {
        if (!l->is_object())
            return api_error::invalid_argument("matchers.labels", "matchers.labels must be an object of strings "
                                                                  "({\"site\": \"plant-7\"})");
        for (const auto& [k, val] : l->get_object()) {
            if (!val.is_string())
                return api_error::invalid_argument("matchers.labels." + std::string(k),
                                                   "matchers.labels." + std::string(k) + " must be a string");
            m.labels.emplace(std::string(k), std::string(val.get_string()));
        }
        if (auto ok = engine::validate_labels(m.labels); !ok) return invalid("matchers.labels", ok);
    }
    auto rule = optional_integer(o, "rule", 1, std::numeric_limits<std::int64_t>::max());
    if (!rule) {
        auto e = rule.error();
        e.field = "matchers.rule";
        return e;
    }
    if (*rule) {
        auto r = state::rule_repository(*s.db).get(tenant, **rule);
        if (!r) return from_state(r.error(), "get rule");
        if (!*r)
            return api_error::invalid_argument("matchers.rule", "no rule " + std::to_string(**rule) +
                                                                    " in your tenant; GET /api/v1/rules lists them");
        m.rule = *rule;
    }
    if (const auto* k = o.if_contains("kind"); k != nullptr && !k->is_null()) {
        if (k->is_string()) m.kind = state::parse_alert_kind(k->get_string());
        if (!m.kind) return api_error::invalid_argument("matchers.kind", "matchers.kind must be THRESHOLD or NO_HEARTBEAT");
    }
    if (const auto* sev = o.if_contains("severity"); sev != nullptr && !sev->is_null()) {
        if (sev->is_string()) m.sev = state::parse_severity(sev->get_string());
        if (!m.sev)
            return api_error::invalid_argument("matchers.severity", "matchers.severity must be critical, major, "
                                                                    "minor, warning or info");
    }
    return m;
}

response list_silences(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto page = parse_page(ctx);
    if (!page) return to_response(page.error());
    const auto active = ctx.query_param("active");
    if (active && *active != "true" && *active != "false")
        return to_response(api_error::invalid_argument(
            "active", "active must be true (silences in force now) or false (ended or not started yet)"));
    const auto now = now_ms();
    state::silence_repository silences(*s.db);
    const auto bad_cursor = [] {
        return to_response(api_error::invalid_argument("cursor", "cursor is not one this list made; pass back "
                                                                 "next_cursor unchanged, or none for the first page"));
    };

    json::array items;
    std::optional<std::string> next;
    std::optional<std::string> cursor =
        page->cursor.empty() ? std::nullopt : std::optional<std::string>(page->cursor);
    // active=false is filtered here: each read asks for what the page still
    // lacks, so the cursor always stands between two reads.
    const bool only_inactive = active == "false";
    std::size_t scanned = 0;
    for (;;) {
        auto got = silences.list(*tenant, active == "true" ? std::optional<std::int64_t>(now) : std::nullopt,
                                 page->limit - items.size(),
                                 cursor ? std::optional<std::string_view>(*cursor) : std::nullopt);
        if (!got) {
            if (got.error().code == state::state_errc::invalid_argument) return bad_cursor();
            return to_response(from_state(got.error(), "list silences"));
        }
        scanned += got->items.size();
        for (const auto& x : got->items)
            if (!only_inactive || !active_at(x, now)) items.push_back(silence_json(x, now));
        next = std::move(got->next_cursor);
        if (!next || items.size() == page->limit || scanned >= max_filter_scan) break;
        cursor = next;
    }
    return list_response(std::move(items), std::move(next));
}

response create_silence(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto body = body_object(ctx);
    if (!body) return to_response(body.error());
    auto matchers = parse_matchers(s, *tenant, *body);
    if (!matchers) return to_response(matchers.error());
    auto comment = optional_string(*body, "comment");
    if (!comment) return to_response(comment.error());
    if (*comment && (*comment)->size() > max_comment_bytes)
        return to_response(api_error::invalid_argument(
            "comment", "comment must be at most " + std::to_string(max_comment_bytes) + " bytes"));
    const auto now = now_ms();
    auto starts = time_member(*body, "starts_at");
    if (!starts) return to_response(starts.error());
    auto ends = time_member(*body, "ends_at");
    if (!ends) return to_response(ends.error());
    auto duration = optional_integer(*body, "duration_s", 1, max_duration_s);
    if (!duration) return to_response(duration.error());
    if (*ends && *duration)
        return to_response(api_error::invalid_argument("duration_s", "give ends_at or duration_s, not both"));
    if (!*ends && !*duration)
        return to_response(api_error::invalid_argument(
            "ends_at", "ends_at is required (an RFC 3339 time), or duration_s (seconds from starts_at)"));
    const std::int64_t starts_ms = starts->value_or(now);
    const std::int64_t ends_ms = *ends ? **ends : starts_ms + **duration * 1000;
    if (ends_ms <= starts_ms)
        return to_response(api_error::invalid_argument(
            "ends_at", "ends_at (" + rfc3339(ends_ms) + ") must be after starts_at (" + rfc3339(starts_ms) + ")"));
    if (ends_ms <= now)
        return to_response(api_error::invalid_argument(
            "ends_at", "ends_at (" + rfc3339(ends_ms) + ") has passed already: such a silence would mute nothing"));
    auto who = signature_of(*s.db, c);
    if (!who) return to_response(who.error());

    state::silence_record rec;
    rec.tenant = *tenant;
    rec.matchers = std::move(*matchers);
    rec.comment = comment->value_or("");
    rec.created_by = std::move(*who);
    rec.starts_at_ms = starts_ms;
    rec.ends_at_ms = ends_ms;
    rec.created_at_ms = now;
    auto id = state::silence_repository(*s.db).create(rec);
    if (!id) return to_response(from_state(id.error(), "create silence"));
    if (s.alerts != nullptr) s.alerts->silences_changed(*tenant);
    rec.id = *id;
    auto res = json_response(silence_json(rec, now), http::status::created);
    res.headers.emplace_back("Location", "/api/v1/silences/" + std::to_string(*id));
    return res;
}

response delete_silence(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_number_id(ctx, "silence", "GET /api/v1/silences");
    if (!id) return to_response(id.error());
    if (auto r = state::silence_repository(*s.db).remove(*tenant, *id); !r) {
        if (r.error().code == state::state_errc::not_found) return to_response(no_silence(*id));
        return to_response(from_state(r.error(), "remove silence"));
    }
    if (s.alerts != nullptr) s.alerts->silences_changed(*tenant);
    return response{http::status::no_content, {}, {}, {}};
}

} // namespace

void add_silence_routes(router& r, auth& a, const api_services& s) {
    BOOST_ASSERT(s.db != nullptr);
    auto bind = [&](access need, detail::api_handler fn) { return detail::guarded(a, s, need, fn); };
    using v = http::verb;
    r.add(v::get, "/api/v1/silences", bind(access::tenant_read, list_silences));
    r.add(v::post, "/api/v1/silences", bind(access::tenant_write, create_silence));
    r.add(v::delete_, "/api/v1/silences/{id}", bind(access::tenant_write, delete_silence));
}

} // namespace pulsegate::webui
