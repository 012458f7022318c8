// Rules of the caller's tenant (DESIGN.md, Rules and alerts):
//
//   GET    /api/v1/rules?limit=&cursor=   list, by id
//   POST   /api/v1/rules                  rule definition -> 201 rule
//   GET    /api/v1/rules/{id}
//   PUT    /api/v1/rules/{id}             rule definition (replaces all of it) -> 200 rule
//   DELETE /api/v1/rules/{id}             204
//   POST   /api/v1/rules/test             {"rule": definition, "from"?, "to"?} -> dry run, nothing saved
//
// A rule definition:
//   {"name" (1..128 bytes), "description"?, "kind": "threshold"|"heartbeat",
//    "severity": "critical"|"major"|"minor"|"warning"|"info",
//    "scope"?: {} | {"device": id} | {"labels": {k: v}}   (default {}: every device),
//    "enabled"? (default true), "escalate_after_s"? (1..2592000),
//    threshold: "metric" (1..255 bytes, no '/', '+', '#', NUL), "op" (> < >= <= == !=),
//               "value", "for_s"? (0..604800, default 0), "clear_value"? (on the
//               clearing side of value: <= value for > and >=, >= value for < and <=;
//               not with == or !=),
//    heartbeat: "interval_s" (1..2592000), "missed"? (1..1000, default 1)}
// Members of the other kind are ignored (and not stored). The answer adds
// "id", "created_at" and "updated_at"; members of the other kind are null.
// Every successful write tells the engine (alert_control::rules_changed),
// which applies it from the next reading on. Viewers read; writes and the
// dry run (it may read much telemetry) need tenant_admin or a tenant token.
//
// The dry run replays stored telemetry of the tenant's devices in the rule's
// scope (the devices table; at most max_dry_run_devices, "truncated" says
// when more would have matched) through engine::dry_run over [from, to]
// (epoch ms or RFC 3339; default the last 24 h; at most 31 days). Threshold
// rules read the metric's points (raw while the raw ring still covers the
// range; else the minute or hour rollups' min and max: "source" says which);
// heartbeat rules read the times of every series of the device, merged.

#include "webui/api.hpp"
#include "webui/api_common.hpp"
#include "webui/pagination.hpp"

#include "engine/alert_control.hpp"
#include "engine/dry_run.hpp"
#include "storage/lmdb_store.hpp"
#include "storage/state/device_repository.hpp"
#include "storage/state/rule_repository.hpp"

#include <boost/json/array.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace pulsegate::webui {

namespace {

namespace state = storage::state;
using namespace detail;

constexpr std::size_t max_metric_bytes = 255;
constexpr std::size_t max_description_bytes = 1024;
constexpr std::int64_t max_for_s = 7 * 24 * 3600;          // 604800
constexpr std::int64_t max_interval_s = 30 * 24 * 3600;    // 2592000
constexpr std::int64_t max_missed = 1000;
constexpr std::int64_t max_escalate_after_s = 30 * 24 * 3600;

constexpr std::int64_t day_ms = 24LL * 3600 * 1000;
constexpr std::int64_t max_dry_run_range_ms = 31 * day_ms;
// 9999-12-31T23:59:59.999Z: keeps from/to arithmetic far from overflow.
constexpr std::int64_t max_time_ms = 253402300799999LL;
constexpr std::size_t max_dry_run_devices = 200;
// Devices read from the table to find those in a label scope.
constexpr std::size_t max_dry_run_scan = 10000;
// Above the default raw ring (100000 slots): the whole raw ring in one query.
constexpr std::size_t dry_run_max_points = 200000;

api_error no_rule(std::int64_t id) {
    return api_error::not_found("no rule " + std::to_string(id) +
                                " in your tenant; GET /api/v1/rules lists the rules you have");
}

api_error bad_cursor() {
    return api_error::invalid_argument("cursor", "cursor is not one this list made; pass back next_cursor "
                                                 "unchanged, or none for the first page");
}

void notify_rules(const api_services& s, std::string_view tenant) {
    if (s.alerts != nullptr) s.alerts->rules_changed(tenant);
}

json::value number_or_null(const std::optional<double>& v) {
    if (!v) return nullptr;
    return *v;
}

json::object rule_json(const state::rule_record& r) {
    const bool threshold = r.kind == state::rule_kind::threshold;
    json::object o;
    o["id"] = r.id;
    o["name"] = r.name;
    o["description"] = r.description;
    o["kind"] = state::to_string(r.kind);
    o["metric"] = threshold ? json::value(r.metric) : json::value(nullptr);
    o["op"] = threshold ? json::value(state::to_string(r.op)) : json::value(nullptr);
    o["value"] = threshold ? json::value(r.value) : json::value(nullptr);
    o["for_s"] = threshold ? json::value(r.for_s) : json::value(nullptr);
    o["clear_value"] = threshold ? number_or_null(r.clear_value) : json::value(nullptr);
    o["interval_s"] = threshold ? json::value(nullptr) : json::value(r.interval_s);
    o["missed"] = threshold ? json::value(nullptr) : json::value(r.missed);
    o["severity"] = state::to_string(r.sev);
    json::object scope;
    if (r.scope.device) scope["device"] = *r.scope.device;
    if (!r.scope.labels.empty()) {
        json::object labels;
        for (const auto& [k, v] : r.scope.labels) labels[k] = v;
        scope["labels"] = std::move(labels);
    }
    o["scope"] = std::move(scope);
    o["enabled"] = r.enabled;
    o["escalate_after_s"] = r.escalate_after_s ? json::value(*r.escalate_after_s) : json::value(nullptr);
    o["created_at"] = rfc3339(r.created_at_ms);
    o["updated_at"] = rfc3339(r.updated_at_ms);
    return o;
}

api_error missing(std::string_view field, std::string_view what) {
    return api_error::invalid_argument(std::string(field), std::string(field) + " is required " + std::string(what));
}

// {} | {"device": id} | {"labels": {...}}; absent or null: {}.
api_result<state::rule_scope> parse_scope(const json::object& body) {
    const auto* v = body.if_contains("scope");
    state::rule_scope scope;
    if (v == nullptr || v->is_null()) return scope;
    if (!v->is_object())
        return api_error::invalid_argument("scope", "scope must be an object: {} (every device), "
                                                    "{\"device\": id} or {\"labels\": {\"k\": \"v\"}}");
    const auto& o = v->get_object();
    const auto* device = o.if_contains("device");
    const auto* labels = o.if_contains("labels");
    const bool has_device = device != nullptr && !device->is_null();
    const bool has_labels = labels != nullptr && !labels->is_null();
    if (has_device && has_labels)
        return api_error::invalid_argument("scope", "scope takes either device or labels, not both; a rule for one "
                                                    "device names it alone");
    if (has_device) {
        if (!device->is_string())
            return api_error::invalid_argument("scope.device", "scope.device must be a device id (a string)");
        const std::string id(device->get_string());
        if (auto ok = engine::validate_device_id(id); !ok) return invalid("scope.device", ok);
        scope.device = id;
    }
    if (has_labels) {
        if (!labels->is_object())
            return api_error::invalid_argument("scope.labels", "scope.labels must be an object of strings "
                                                               "({\"site\": \"plant-7\"})");
        for (const auto& [k, val] : labels->get_object()) {
            if (!val.is_string())
                return api_error::invalid_argument("scope.labels." + std::string(k),
                                                   "scope.labels." + std::string(k) + " must be a string");
            scope.labels.emplace(std::string(k), std::string(val.get_string()));
        }
        if (auto ok = engine::validate_labels(scope.labels); !ok) return invalid("scope.labels", ok);
    }
    return scope;
}

api_result<void> check_metric(std::string_view metric) {
    if (metric.empty() || metric.size() > max_metric_bytes)
        return api_error::invalid_argument("metric", "metric must be 1 to " + std::to_string(max_metric_bytes) +
                                                         " bytes (it has " + std::to_string(metric.size()) + ")");
    if (metric.find_first_of(std::string_view("/+#\0", 4)) != std::string_view::npos)
        return api_error::invalid_argument("metric", "metric must not contain '/', '+', '#' or NUL: it is one key "
                                                     "of a telemetry object (\"temp_c\")");
    return {};
}

// A rule definition as POST and PUT take it (see the top of the file). The
// tenant, id and times are the caller's to set.
api_result<state::rule_record> parse_rule(const json::object& body) {
    state::rule_record r;
    auto name = required_string(body, "name");
    if (!name) return name.error();
    if (auto ok = engine::validate_display_name(*name); !ok) return invalid("name", ok);
    r.name = std::move(*name);
    auto description = optional_string(body, "description");
    if (!description) return description.error();
    if (*description && (*description)->size() > max_description_bytes)
        return api_error::invalid_argument("description", "description must be at most " +
                                                              std::to_string(max_description_bytes) + " bytes");
    r.description = description->value_or("");

    auto kind = required_string(body, "kind");
    if (!kind) return kind.error();
    const auto k = state::parse_rule_kind(*kind);
    if (!k) return api_error::invalid_argument("kind", "kind must be threshold or heartbeat");
    r.kind = *k;

    if (r.kind == state::rule_kind::threshold) {
        auto metric = optional_string(body, "metric");
        if (!metric) return metric.error();
        if (!*metric) return missing("metric", "for a threshold rule: the telemetry metric it watches");
        if (auto ok = check_metric(**metric); !ok) return ok.error();
        r.metric = std::move(**metric);
        auto op = optional_string(body, "op");
        if (!op) return op.error();
        if (!*op) return missing("op", "for a threshold rule: >, <, >=, <=, == or !=");
        const auto o = state::parse_compare_op(**op);
        if (!o) return api_error::invalid_argument("op", "op must be >, <, >=, <=, == or !=");
        r.op = *o;
        auto value = optional_number(body, "value");
        if (!value) return value.error();
        if (!*value) return missing("value", "for a threshold rule: the number the metric is compared with");
        r.value = **value;
        auto for_s = optional_integer(body, "for_s", 0, max_for_s);
        if (!for_s) return for_s.error();
        r.for_s = for_s->value_or(0);
        auto clear = optional_number(body, "clear_value");
        if (!clear) return clear.error();
        if (*clear) {
            const double c = **clear;
            using op_t = state::compare_op;
            if (r.op == op_t::eq || r.op == op_t::ne)
                return api_error::invalid_argument("clear_value", "clear_value (hysteresis) needs op >, <, >= or "
                                                                  "<=; with == and != leave it out");
            if ((r.op == op_t::gt || r.op == op_t::ge) && c > r.value)
                return api_error::invalid_argument(
                    "clear_value", "clear_value must be at most value for op " + std::string(state::to_string(r.op)) +
                                       ": the alert clears once the metric falls back to it");
            if ((r.op == op_t::lt || r.op == op_t::le) && c < r.value)
                return api_error::invalid_argument(
                    "clear_value", "clear_value must be at least value for op " + std::string(state::to_string(r.op)) +
                                       ": the alert clears once the metric rises back to it");
            r.clear_value = c;
        }
    } else {
        auto interval = optional_integer(body, "interval_s", 1, max_interval_s);
        if (!interval) return interval.error();
        if (!*interval) return missing("interval_s", "for a heartbeat rule: the seconds between expected messages");
        r.interval_s = **interval;
        auto missed = optional_integer(body, "missed", 1, max_missed);
        if (!missed) return missed.error();
        r.missed = missed->value_or(1);
    }

    auto sev = required_string(body, "severity");
    if (!sev) return sev.error();
    const auto s = state::parse_severity(*sev);
    if (!s) return api_error::invalid_argument("severity", "severity must be critical, major, minor, warning or info");
    r.sev = *s;
    auto scope = parse_scope(body);
    if (!scope) return scope.error();
    r.scope = std::move(*scope);
    auto enabled = optional_bool(body, "enabled");
    if (!enabled) return enabled.error();
    r.enabled = enabled->value_or(true);
    auto escalate = optional_integer(body, "escalate_after_s", 1, max_escalate_after_s);
    if (!escalate) return escalate.error();
    r.escalate_after_s = *escalate;
    return r;
}

api_result<state::rule_record> load_rule(const api_services& s, std::string_view tenant, std::int64_t id) {
    auto r = state::rule_repository(*s.db).get(tenant, id);
    if (!r) return from_state(r.error(), "get rule");
    if (!*r) return no_rule(id);
    return std::move(**r);
}

response list_rules(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto page = parse_page(ctx);
    if (!page) return to_response(page.error());
    const auto cursor = page->cursor.empty() ? std::nullopt : std::optional<std::string_view>(page->cursor);
    auto got = state::rule_repository(*s.db).list(*tenant, page->limit, cursor);
    if (!got) {
        if (got.error().code == state::state_errc::invalid_argument) return to_response(bad_cursor());
        return to_response(from_state(got.error(), "list rules"));
    }
    json::array items;
    for (const auto& r : got->items) items.push_back(rule_json(r));
    return list_response(std::move(items), std::move(got->next_cursor));
}

response create_rule(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto body = body_object(ctx);
    if (!body) return to_response(body.error());
    auto r = parse_rule(*body);
    if (!r) return to_response(r.error());
    r->tenant = *tenant;
    r->created_at_ms = r->updated_at_ms = now_ms();
    auto id = state::rule_repository(*s.db).create(*r);
    if (!id) return to_response(from_state(id.error(), "create rule"));
    notify_rules(s, *tenant);
    r->id = *id;
    auto res = json_response(rule_json(*r), http::status::created);
    res.headers.emplace_back("Location", "/api/v1/rules/" + std::to_string(*id));
    return res;
}

response get_rule(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_number_id(ctx, "rule", "GET /api/v1/rules");
    if (!id) return to_response(id.error());
    auto r = load_rule(s, *tenant, *id);
    if (!r) return to_response(r.error());
    return json_response(rule_json(*r));
}

response replace_rule(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_number_id(ctx, "rule", "GET /api/v1/rules");
    if (!id) return to_response(id.error());
    auto body = body_object(ctx);
    if (!body) return to_response(body.error());
    auto r = parse_rule(*body);
    if (!r) return to_response(r.error());
    auto before = load_rule(s, *tenant, *id);
    if (!before) return to_response(before.error());
    r->id = *id;
    r->tenant = *tenant;
    r->created_at_ms = before->created_at_ms;
    r->updated_at_ms = now_ms();
    if (auto done = state::rule_repository(*s.db).replace(*r); !done) {
        if (done.error().code == state::state_errc::not_found) return to_response(no_rule(*id));
        return to_response(from_state(done.error(), "replace rule"));
    }
    notify_rules(s, *tenant);
    return json_response(rule_json(*r));
}

response delete_rule(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_number_id(ctx, "rule", "GET /api/v1/rules");
    if (!id) return to_response(id.error());
    if (auto r = state::rule_repository(*s.db).remove(*tenant, *id); !r) {
        if (r.error().code == state::state_errc::not_found) return to_response(no_rule(*id));
        return to_response(from_state(r.error(), "remove rule"));
    }
    notify_rules(s, *tenant);
    return response{http::status::no_content, {}, {}, {}};
}

// ---- dry run ------------------------------------------------------------------

// "from"/"to" of the dry run: epoch ms or RFC 3339; nullopt when absent.
api_result<std::optional<std::int64_t>> time_member(const json::object& body, std::string_view field) {
    const auto* v = body.if_contains(field);
    if (v == nullptr || v->is_null()) return std::optional<std::int64_t>();
    std::optional<std::int64_t> at;
    if (v->is_string()) at = parse_rfc3339(v->get_string());
    else if (v->is_int64()) at = v->get_int64();
    else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(max_time_ms))
        at = static_cast<std::int64_t>(v->get_uint64());
    if (!at || *at < 0 || *at > max_time_ms)
        return api_error::invalid_argument(std::string(field),
                                           std::string(field) + " must be epoch milliseconds or an RFC 3339 time "
                                                                "such as \"2026-11-23T12:00:00Z\"");
    return at;
}

// The tenant's devices in `scope`, by id: at most max_dry_run_devices;
// `truncated` when more match (or the scan stopped before the end).
api_result<std::vector<std::string>> scoped_devices(const api_services& s, std::string_view tenant,
                                                    const state::rule_scope& scope, bool& truncated) {
    state::device_repository devices(*s.db);
    std::vector<std::string> out;
    truncated = false;
    if (scope.device) {
        auto d = devices.get(tenant, *scope.device);
        if (!d) return from_state(d.error(), "get device");
        if (*d) out.push_back((*d)->id);
        return out;
    }
    std::optional<std::string> cursor;
    std::size_t scanned = 0;
    for (;;) {
        auto page = devices.list(tenant, page_request::max_limit,
                                 cursor ? std::optional<std::string_view>(*cursor) : std::nullopt);
        if (!page) return from_state(page.error(), "list devices");
        for (const auto& d : page->items) {
            ++scanned;
            const bool in_scope = std::all_of(scope.labels.begin(), scope.labels.end(), [&](const auto& kv) {
                const auto it = d.labels.find(kv.first);
                return it != d.labels.end() && it->second == kv.second;
            });
            if (!in_scope) continue;
            if (out.size() == max_dry_run_devices) {
                truncated = true;
                return out;
            }
            out.push_back(d.id);
        }
        if (!page->next_cursor) return out;
        if (scanned >= max_dry_run_scan) {
            truncated = true;
            return out;
        }
        cursor = std::move(page->next_cursor);
    }
}

std::string_view source_name(storage::resolution r) {
    return r == storage::resolution::raw ? "raw" : r == storage::resolution::minute ? "minute" : "hour";
}

api_error telemetry_failed(const boost::system::error_code& ec) {
    return unavailable("reading telemetry failed (" + ec.message() +
                       "); retry, and if it persists the operator should check the data dir");
}

response test_rule(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto body = body_object(ctx);
    if (!body) return to_response(body.error());
    const auto* def = body->if_contains("rule");
    if (def == nullptr || def->is_null())
        return to_response(api_error::invalid_argument("rule", "rule is required: the rule definition to try, as "
                                                               "POST /api/v1/rules takes it"));
    if (!def->is_object())
        return to_response(api_error::invalid_argument("rule", "rule must be an object: a rule definition"));
    auto rule = parse_rule(def->get_object());
    if (!rule) {
        auto e = rule.error();
        if (!e.field.empty()) e.field = "rule." + e.field;
        return to_response(e);
    }
    rule->tenant = *tenant;
    auto to = time_member(*body, "to");
    if (!to) return to_response(to.error());
    auto from = time_member(*body, "from");
    if (!from) return to_response(from.error());
    const std::int64_t to_ms = to->value_or(now_ms());
    const std::int64_t from_ms = from->value_or(std::max<std::int64_t>(0, to_ms - day_ms));
    if (from_ms > to_ms)
        return to_response(api_error::invalid_argument("from", "from (" + rfc3339(from_ms) + ") is after to (" +
                                                                   rfc3339(to_ms) + ")"));
    if (to_ms - from_ms > max_dry_run_range_ms)
        return to_response(api_error::invalid_argument(
            "from", "a dry run covers at most 31 days; from (" + rfc3339(from_ms) + ") is further before to (" +
                        rfc3339(to_ms) + ")"));
    if (s.telemetry == nullptr)
        return to_response(unavailable("telemetry is not available on this server (no telemetry store); the "
                                       "operator should check the daemon's storage configuration"));

    bool truncated = false;
    auto devices = scoped_devices(s, *tenant, rule->scope, truncated);
    if (!devices) return to_response(devices.error());

    json::array items;
    std::vector<engine::sample> samples;
    for (const auto& device : *devices) {
        samples.clear();
        json::object item;
        item["device"] = device;
        storage::series_query q;
        q.from_ms = from_ms;
        q.to_ms = to_ms;
        q.max_points = dry_run_max_points;
        if (rule->kind == state::rule_kind::threshold) {
            q.series = {*tenant, device, rule->metric};
            auto got = s.telemetry->query(q);
            if (!got) return to_response(telemetry_failed(got.error()));
            for (const auto& p : got->points) samples.push_back({p.ts_ms, p.value});
            item["source"] = source_name(got->source);
        } else {
            // Any message proves liveness: the times of all the device's series.
            for (const auto& k : s.telemetry->list_series(*tenant, device)) {
                if (k.device != device) continue;
                q.series = k;
                auto got = s.telemetry->query(q);
                if (!got) return to_response(telemetry_failed(got.error()));
                for (const auto& p : got->points) samples.push_back({p.ts_ms, 0});
            }
            std::sort(samples.begin(), samples.end(), [](const auto& x, const auto& y) { return x.ts_ms < y.ts_ms; });
            samples.erase(std::unique(samples.begin(), samples.end(),
                                      [](const auto& x, const auto& y) { return x.ts_ms == y.ts_ms; }),
                          samples.end());
        }
        item["samples"] = static_cast<std::int64_t>(samples.size());
        json::array alerts;
        for (const auto& a : engine::dry_run(*rule, samples, to_ms)) {
            json::object o;
            o["opened_at"] = rfc3339(a.opened_at_ms);
            o["closed_at"] = rfc3339_or_null(a.closed_at_ms);
            o["value"] = std::isfinite(a.value) ? json::value(a.value) : json::value(nullptr);
            o["close_value"] = a.close_value && std::isfinite(*a.close_value) ? json::value(*a.close_value)
                                                                               : json::value(nullptr);
            o["count"] = a.count;
            alerts.push_back(std::move(o));
        }
        item["alerts"] = std::move(alerts);
        items.push_back(std::move(item));
    }
    json::object o;
    o["from"] = rfc3339(from_ms);
    o["to"] = rfc3339(to_ms);
    o["devices_evaluated"] = static_cast<std::int64_t>(devices->size());
    o["truncated"] = truncated;
    o["items"] = std::move(items);
    return json_response(o);
}

} // namespace

void add_rule_routes(router& r, auth& a, const api_services& s) {
    BOOST_ASSERT(s.db != nullptr);
    auto bind = [&](access need, detail::api_handler fn) { return detail::guarded(a, s, need, fn); };
    using v = http::verb;
    r.add(v::get, "/api/v1/rules", bind(access::tenant_read, list_rules));
    r.add(v::post, "/api/v1/rules", bind(access::tenant_write, create_rule));
    r.add(v::post, "/api/v1/rules/test", bind(access::tenant_write, test_rule));
    r.add(v::get, "/api/v1/rules/{id}", bind(access::tenant_read, get_rule));
    r.add(v::put, "/api/v1/rules/{id}", bind(access::tenant_write, replace_rule));
    r.add(v::delete_, "/api/v1/rules/{id}", bind(access::tenant_write, delete_rule));
}

} // namespace pulsegate::webui
