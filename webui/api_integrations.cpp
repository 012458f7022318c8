// Delivery of the caller's tenant (DESIGN.md, Delivery): integrations (where
// alerts go), routes (which alert events go where) and the delivery log.
//
//   GET    /api/v1/integrations?limit=&cursor=        by id
//   POST   /api/v1/integrations                       -> 201 integration
//   GET    /api/v1/integrations/{id}
//   PUT    /api/v1/integrations/{id}                  -> 200 integration
//   DELETE /api/v1/integrations/{id}                  204 (its jobs go with it)
//   POST   /api/v1/integrations/{id}/test             sends a synthetic alert now
//                                                     -> {"outcome", "status", "error", "latency_ms"}
//   GET    /api/v1/routes?limit=&cursor=, POST, GET|PUT|DELETE /api/v1/routes/{id}
//   GET    /api/v1/deliveries?alert=&integration=&status=&limit=&cursor=   newest first
//   GET    /api/v1/deliveries/{id}
//
// An integration is {"id", "name", "type", "config", "secrets", "enabled",
// "created_at", "updated_at"}; "secrets" shows which secret settings are
// set, each as "********", never their values. PUT replaces name, config,
// enabled and the secrets given; a secret sent as "********" (or not sent)
// keeps its value, null removes it. Settings are checked by the adapter of
// the type (adapters/*_sender.hpp validate_*), and the destination by the
// SSRF guard (adapters/target_guard.hpp) when saved and when tested.
//
// A route is {"id", "name", "integrations": [ids], "match": {...},
// "repeat_s", "continue", "enabled", "created_at", "updated_at"}; see
// engine/router.hpp for match and continue.
//
// Writes tell the router (its table) and the outbox (its cached settings).
// Viewers read, admins write.

#include "webui/api.hpp"
#include "common/json_text.hpp"
#include "webui/api_common.hpp"
#include "webui/pagination.hpp"

#include "adapters/email_sender.hpp"
#include "adapters/mqtt_sender.hpp"
#include "adapters/snmp_sender.hpp"
#include "adapters/target_guard.hpp"
#include "adapters/webhook_sender.hpp"
#include "engine/outbox.hpp"
#include "engine/router.hpp"
#include "storage/state/delivery_repository.hpp"
#include "storage/state/integration_repository.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>

#include <limits>

namespace pulsegate::webui {

namespace {

namespace state = storage::state;
using namespace detail;

constexpr std::string_view mask = "********";
constexpr std::size_t max_name_bytes = 200;
constexpr std::size_t max_settings_bytes = 64 * 1024;
constexpr std::int64_t max_repeat_s = 366LL * 24 * 3600;

api_error no_integration(std::int64_t id) {
    return api_error::not_found("no integration " + std::to_string(id) +
                                " in your tenant; GET /api/v1/integrations lists them");
}
api_error no_route(std::int64_t id) {
    return api_error::not_found("no route " + std::to_string(id) + " in your tenant; GET /api/v1/routes lists them");
}

api_error unavailable_delivery() {
    return unavailable("delivery is not configured in this server (no secrets key); the operator should check the log");
}

json::object integration_json(const state::integration_record& r) {
    json::object secrets;
    for (const auto& [k, v] : common::object_or_empty(r.secrets))
        if (!v.is_null())
            secrets[k] = mask;
    json::object o;
    o["id"] = r.id;
    o["name"] = r.name;
    o["type"] = r.type;
    o["config"] = common::object_or_empty(r.config);
    o["secrets"] = std::move(secrets);
    o["enabled"] = r.enabled;
    o["created_at"] = rfc3339(r.created_at_ms);
    o["updated_at"] = rfc3339(r.updated_at_ms);
    return o;
}

// The host a type's settings send to (checked by the SSRF guard).
std::optional<std::string> destination_host(std::string_view type, const json::object& config) {
    const auto text = [&](std::string_view k) -> std::optional<std::string> {
        const auto* v = config.if_contains(k);
        if (v == nullptr || !v->is_string())
            return std::nullopt;
        return std::string(v->get_string());
    };
    if (type == "email" || type == "snmp")
        return text("host");
    const auto url = text("url");
    if (!url)
        return std::nullopt;
    auto u = boost::urls::parse_uri(*url);
    if (!u)
        return std::nullopt;
    std::string host(u->host_address());
    if (u->host_type() == boost::urls::host_type::ipv6)
        host = "[" + host + "]";
    return host;
}

api_result<void> check_settings(const api_services& s, std::string_view type, const json::object& config,
                                const json::object& secrets) {
    std::string why;
    bool ok = false;
    if (type == "webhook")
        ok = adapters::validate_webhook(config, secrets, &why);
    else if (type == "email")
        ok = adapters::validate_email(config, secrets, &why);
    else if (type == "snmp")
        ok = adapters::validate_snmp(config, secrets, &why);
    else if (type == "mqtt")
        ok = adapters::validate_mqtt(config, secrets, &why);
    if (!ok) {
        const auto field = why.starts_with("secrets.") || why.starts_with("config.")
                               ? why.substr(0, why.find_first_of(" :"))
                               : std::string("config");
        return api_error::invalid_argument(field, why);
    }
    if (s.guard != nullptr) {
        const auto host = destination_host(type, config);
        if (host && !s.guard->resolve(*host, &why))
            return api_error::invalid_argument(type == "email" || type == "snmp" ? "config.host" : "config.url", why);
    }
    return {};
}

api_result<json::object> object_member(const json::object& body, std::string_view field) {
    const auto* v = body.if_contains(field);
    if (v == nullptr || v->is_null())
        return json::object();
    if (!v->is_object())
        return api_error::invalid_argument(std::string(field), std::string(field) + " must be an object");
    if (common::to_json_text(*v).size() > max_settings_bytes)
        return api_error::invalid_argument(std::string(field), std::string(field) + " is larger than 64 KiB");
    return v->get_object();
}

api_result<std::string> name_member(const json::object& body) {
    auto name = required_string(body, "name");
    if (!name)
        return name.error();
    if (name->empty() || name->size() > max_name_bytes)
        return api_error::invalid_argument("name", "name must be 1 to 200 bytes");
    return name;
}

void tell(const api_services& s) {
    if (s.router != nullptr)
        if (auto r = s.router->reload(); !r)
            spdlog::warn("rest: the router did not reread routes and integrations: {}", r.error().message);
    if (s.outbox != nullptr)
        s.outbox->integrations_changed();
}

// ---- integrations -------------------------------------------------------------

response list_integrations(const api_services& s, const caller& c, const request_context& ctx) {
    if (s.secrets == nullptr) return to_response(unavailable_delivery());
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto page = parse_page(ctx);
    if (!page) return to_response(page.error());
    auto got = state::integration_repository(*s.db, *s.secrets)
                   .list(*tenant, page->limit,
                         page->cursor.empty() ? std::nullopt : std::optional<std::string_view>(page->cursor));
    if (!got) return to_response(from_state(got.error(), "list integrations"));
    json::array items;
    for (const auto& r : got->items) items.push_back(integration_json(r));
    return list_response(std::move(items), std::move(got->next_cursor));
}

response create_integration(const api_services& s, const caller& c, const request_context& ctx) {
    if (s.secrets == nullptr) return to_response(unavailable_delivery());
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto body = body_object(ctx);
    if (!body) return to_response(body.error());
    auto name = name_member(*body);
    if (!name) return to_response(name.error());
    auto type = required_string(*body, "type");
    if (!type) return to_response(type.error());
    if (*type != "webhook" && *type != "email" && *type != "snmp" && *type != "mqtt")
        return to_response(api_error::invalid_argument("type", "type must be webhook, email, snmp or mqtt"));
    auto config = object_member(*body, "config");
    if (!config) return to_response(config.error());
    auto secrets = object_member(*body, "secrets");
    if (!secrets) return to_response(secrets.error());
    auto enabled = optional_bool(*body, "enabled");
    if (!enabled) return to_response(enabled.error());
    if (auto ok = check_settings(s, *type, *config, *secrets); !ok) return to_response(ok.error());

    state::integration_record r;
    r.tenant = *tenant;
    r.name = *name;
    r.type = *type;
    r.config = common::to_json_text(*config);
    r.secrets = common::to_json_text(*secrets);
    r.enabled = enabled->value_or(true);
    r.created_at_ms = r.updated_at_ms = now_ms();
    auto id = state::integration_repository(*s.db, *s.secrets).create(r);
    if (!id) return to_response(from_state(id.error(), "create integration"));
    r.id = *id;
    tell(s);
    auto res = json_response(integration_json(r), http::status::created);
    res.headers.emplace_back("Location", "/api/v1/integrations/" + std::to_string(*id));
    return res;
}

api_result<state::integration_record> load_integration(const api_services& s, const std::string& tenant,
                                                       const request_context& ctx) {
    auto id = path_number_id(ctx, "integration", "GET /api/v1/integrations");
    if (!id) return id.error();
    auto got = state::integration_repository(*s.db, *s.secrets).get(tenant, *id);
    if (!got) return from_state(got.error(), "get integration");
    if (!*got) return no_integration(*id);
    return std::move(**got);
}

response get_integration(const api_services& s, const caller& c, const request_context& ctx) {
    if (s.secrets == nullptr) return to_response(unavailable_delivery());
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto r = load_integration(s, *tenant, ctx);
    if (!r) return to_response(r.error());
    return json_response(integration_json(*r));
}

response update_integration(const api_services& s, const caller& c, const request_context& ctx) {
    if (s.secrets == nullptr) return to_response(unavailable_delivery());
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto r = load_integration(s, *tenant, ctx);
    if (!r) return to_response(r.error());
    auto body = body_object(ctx);
    if (!body) return to_response(body.error());
    auto name = name_member(*body);
    if (!name) return to_response(name.error());
    if (auto type = optional_string(*body, "type"); !type) {
        return to_response(type.error());
    } else if (*type && **type != r->type) {
        return to_response(api_error::invalid_argument(
            "type", "the type of an integration cannot change (" + r->type + "); create a new integration"));
    }
    auto config = object_member(*body, "config");
    if (!config) return to_response(config.error());
    auto given = object_member(*body, "secrets");
    if (!given) return to_response(given.error());
    auto enabled = optional_bool(*body, "enabled");
    if (!enabled) return to_response(enabled.error());
    auto secrets = common::object_or_empty(r->secrets);
    for (const auto& [k, v] : *given) {
        if (v.is_null()) secrets.erase(k);
        else if (!(v.is_string() && v.get_string() == mask)) secrets[k] = v;
    }
    if (auto ok = check_settings(s, r->type, *config, secrets); !ok) return to_response(ok.error());
    r->name = *name;
    r->config = common::to_json_text(*config);
    r->secrets = common::to_json_text(secrets);
    r->enabled = enabled->value_or(r->enabled);
    r->updated_at_ms = now_ms();
    if (auto w = state::integration_repository(*s.db, *s.secrets).update(*r); !w) {
        if (w.error().code == state::state_errc::not_found) return to_response(no_integration(r->id));
        return to_response(from_state(w.error(), "update integration"));
    }
    tell(s);
    return json_response(integration_json(*r));
}

response delete_integration(const api_services& s, const caller& c, const request_context& ctx) {
    if (s.secrets == nullptr) return to_response(unavailable_delivery());
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_number_id(ctx, "integration", "GET /api/v1/integrations");
    if (!id) return to_response(id.error());
    if (auto r = state::integration_repository(*s.db, *s.secrets).remove(*tenant, *id); !r) {
        if (r.error().code == state::state_errc::not_found) return to_response(no_integration(*id));
        return to_response(from_state(r.error(), "remove integration"));
    }
    tell(s);
    return response{http::status::no_content, {}, {}, {}};
}

response test_integration(const api_services& s, const caller& c, const request_context& ctx) {
    if (s.secrets == nullptr) return to_response(unavailable_delivery());
    if (s.outbox == nullptr) return to_response(unavailable("test delivery is not available in this server"));
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto r = load_integration(s, *tenant, ctx);
    if (!r) return to_response(r.error());
    // The destination is checked again: the allowlist may have changed since it was saved.
    if (auto ok = check_settings(s, r->type, common::object_or_empty(r->config), common::object_or_empty(r->secrets)); !ok)
        return to_response(ok.error());
    const auto got = s.outbox->send_test(*r);
    json::object o;
    o["outcome"] = got.result.result == adapters::outcome::delivered ? "delivered"
                   : got.result.result == adapters::outcome::failed  ? "failed"
                                                                     : "retry";
    o["status"] = got.result.status;
    o["error"] = got.result.error.empty() ? json::value(nullptr) : json::value(got.result.error);
    o["latency_ms"] = got.latency_ms;
    return json_response(std::move(o));
}

// ---- routes -------------------------------------------------------------------

json::object route_json(const state::route_record& r) {
    json::array targets;
    for (auto i : r.integrations) targets.emplace_back(i);
    json::object o;
    o["id"] = r.id;
    o["name"] = r.name;
    o["integrations"] = std::move(targets);
    o["match"] = common::object_or_empty(r.match);
    o["repeat_s"] = r.repeat_s;
    o["continue"] = r.continue_matching;
    o["enabled"] = r.enabled;
    o["created_at"] = rfc3339(r.created_at_ms);
    o["updated_at"] = rfc3339(r.updated_at_ms);
    return o;
}

// Fills `r` from a POST/PUT body.
api_result<void> route_from_body(const json::object& body, state::route_record& r) {
    auto name = name_member(body);
    if (!name) return name.error();
    r.name = *name;
    const auto* targets = body.if_contains("integrations");
    if (targets == nullptr || !targets->is_array() || targets->get_array().empty())
        return api_error::invalid_argument("integrations", "integrations must be a non-empty array of integration ids "
                                                           "(GET /api/v1/integrations lists them)");
    r.integrations.clear();
    for (const auto& t : targets->get_array()) {
        if (!t.is_int64() || t.get_int64() <= 0)
            return api_error::invalid_argument("integrations", "integrations must hold integration ids (positive "
                                                               "integers)");
        r.integrations.push_back(t.get_int64());
    }
    std::sort(r.integrations.begin(), r.integrations.end());
    r.integrations.erase(std::unique(r.integrations.begin(), r.integrations.end()), r.integrations.end());
    auto match = object_member(body, "match");
    if (!match) return match.error();
    std::string why;
    auto parsed = engine::parse_route_match(*match, &why);
    if (!parsed) return api_error::invalid_argument(why.substr(0, why.find(' ')), why);
    r.match = common::to_json_text(engine::to_json(*parsed));
    auto repeat = optional_integer(body, "repeat_s", 0, max_repeat_s);
    if (!repeat) return repeat.error();
    r.repeat_s = repeat->value_or(0);
    auto cont = optional_bool(body, "continue");
    if (!cont) return cont.error();
    r.continue_matching = cont->value_or(true);
    auto enabled = optional_bool(body, "enabled");
    if (!enabled) return enabled.error();
    r.enabled = enabled->value_or(true);
    return {};
}

api_error route_write_error(const state::state_error& e, std::string_view operation) {
    if (e.code == state::state_errc::constraint_violation)
        return api_error::invalid_argument("integrations", e.message + "; GET /api/v1/integrations lists them");
    return from_state(e, operation);
}

response list_routes(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto page = parse_page(ctx);
    if (!page) return to_response(page.error());
    static const state::secret_box unused(state::secret_box::key_type{});
    auto got = state::integration_repository(*s.db, unused)
                   .list_routes(*tenant, page->limit,
                                page->cursor.empty() ? std::nullopt : std::optional<std::string_view>(page->cursor));
    if (!got) return to_response(from_state(got.error(), "list routes"));
    json::array items;
    for (const auto& r : got->items) items.push_back(route_json(r));
    return list_response(std::move(items), std::move(got->next_cursor));
}

response create_route(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto body = body_object(ctx);
    if (!body) return to_response(body.error());
    state::route_record r;
    r.tenant = *tenant;
    if (auto ok = route_from_body(*body, r); !ok) return to_response(ok.error());
    r.created_at_ms = r.updated_at_ms = now_ms();
    static const state::secret_box unused(state::secret_box::key_type{});
    auto id = state::integration_repository(*s.db, unused).create_route(r);
    if (!id) return to_response(route_write_error(id.error(), "create route"));
    r.id = *id;
    tell(s);
    auto res = json_response(route_json(r), http::status::created);
    res.headers.emplace_back("Location", "/api/v1/routes/" + std::to_string(*id));
    return res;
}

response get_route(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_number_id(ctx, "route", "GET /api/v1/routes");
    if (!id) return to_response(id.error());
    static const state::secret_box unused(state::secret_box::key_type{});
    auto got = state::integration_repository(*s.db, unused).get_route(*tenant, *id);
    if (!got) return to_response(from_state(got.error(), "get route"));
    if (!*got) return to_response(no_route(*id));
    return json_response(route_json(**got));
}

response update_route(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_number_id(ctx, "route", "GET /api/v1/routes");
    if (!id) return to_response(id.error());
    static const state::secret_box unused(state::secret_box::key_type{});
    state::integration_repository repo(*s.db, unused);
    auto old = repo.get_route(*tenant, *id);
    if (!old) return to_response(from_state(old.error(), "get route"));
    if (!*old) return to_response(no_route(*id));
    auto body = body_object(ctx);
    if (!body) return to_response(body.error());
    auto r = **old;
    if (auto ok = route_from_body(*body, r); !ok) return to_response(ok.error());
    r.updated_at_ms = now_ms();
    if (auto w = repo.update_route(r); !w) {
        if (w.error().code == state::state_errc::not_found) return to_response(no_route(*id));
        return to_response(route_write_error(w.error(), "update route"));
    }
    tell(s);
    return json_response(route_json(r));
}

response delete_route(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_number_id(ctx, "route", "GET /api/v1/routes");
    if (!id) return to_response(id.error());
    static const state::secret_box unused(state::secret_box::key_type{});
    if (auto r = state::integration_repository(*s.db, unused).remove_route(*tenant, *id); !r) {
        if (r.error().code == state::state_errc::not_found) return to_response(no_route(*id));
        return to_response(from_state(r.error(), "remove route"));
    }
    tell(s);
    return response{http::status::no_content, {}, {}, {}};
}

// ---- deliveries -----------------------------------------------------------------

json::object delivery_json(const state::delivery_entry& e) {
    const auto& j = e.job;
    json::array log;
    for (const auto& a : e.attempts) {
        json::object x;
        x["attempt"] = a.attempt;
        x["started_at"] = rfc3339(a.started_at_ms);
        x["latency_ms"] = a.latency_ms;
        x["outcome"] = state::to_string(a.outcome);
        x["status"] = a.status;
        x["error"] = a.error ? json::value(*a.error) : json::value(nullptr);
        log.push_back(std::move(x));
    }
    json::object o;
    o["id"] = j.id;
    o["alert"] = j.alert ? json::value(*j.alert) : json::value(nullptr);
    o["integration"] = j.integration;
    o["event"] = j.event;
    o["event_key"] = j.event_key;
    o["status"] = state::to_string(j.state);
    o["attempts"] = j.attempts;
    o["max_attempts"] = j.max_attempts;
    o["next_attempt_at"] = j.state == state::job_state::pending ? json::value(rfc3339(j.next_attempt_at_ms))
                                                                 : json::value(nullptr);
    o["last_error"] = j.last_error ? json::value(*j.last_error) : json::value(nullptr);
    o["created_at"] = rfc3339(j.created_at_ms);
    o["updated_at"] = rfc3339(j.updated_at_ms);
    o["attempt_log"] = std::move(log);
    return o;
}

response list_deliveries(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto page = parse_page(ctx);
    if (!page) return to_response(page.error());
    state::delivery_filter f;
    auto alert = query_int64(ctx, "alert", 1, std::numeric_limits<std::int64_t>::max());
    if (!alert) return to_response(alert.error());
    f.alert = *alert;
    auto integration = query_int64(ctx, "integration", 1, std::numeric_limits<std::int64_t>::max());
    if (!integration) return to_response(integration.error());
    f.integration = *integration;
    if (auto st = ctx.query_param("status")) {
        f.state = state::parse_job_state(*st);
        if (!f.state)
            return to_response(
                api_error::invalid_argument("status", "status must be pending, in_flight, delivered or dead"));
    }
    auto got = state::delivery_repository(*s.db).list(
        *tenant, f, page->limit, page->cursor.empty() ? std::nullopt : std::optional<std::string_view>(page->cursor));
    if (!got) {
        if (got.error().code == state::state_errc::invalid_argument)
            return to_response(api_error::invalid_argument("cursor", got.error().message));
        return to_response(from_state(got.error(), "list deliveries"));
    }
    json::array items;
    for (const auto& e : got->items) items.push_back(delivery_json(e));
    return list_response(std::move(items), std::move(got->next_cursor));
}

response get_delivery(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_number_id(ctx, "delivery", "GET /api/v1/deliveries");
    if (!id) return to_response(id.error());
    auto got = state::delivery_repository(*s.db).get(*tenant, *id);
    if (!got) return to_response(from_state(got.error(), "get delivery"));
    if (!*got)
        return to_response(api_error::not_found("no delivery " + std::to_string(*id) +
                                                " in your tenant; GET /api/v1/deliveries lists them"));
    return json_response(delivery_json(**got));
}

} // namespace

void add_integration_routes(router& r, auth& a, const api_services& s) {
    BOOST_ASSERT(s.db != nullptr);
    auto bind = [&](access need, detail::api_handler fn) { return detail::guarded(a, s, need, fn); };
    using v = http::verb;
    r.add(v::get, "/api/v1/integrations", bind(access::tenant_read, list_integrations));
    r.add(v::post, "/api/v1/integrations", bind(access::tenant_write, create_integration));
    r.add(v::get, "/api/v1/integrations/{id}", bind(access::tenant_read, get_integration));
    r.add(v::put, "/api/v1/integrations/{id}", bind(access::tenant_write, update_integration));
    r.add(v::delete_, "/api/v1/integrations/{id}", bind(access::tenant_write, delete_integration));
    r.add(v::post, "/api/v1/integrations/{id}/test", bind(access::tenant_write, test_integration));
    r.add(v::get, "/api/v1/routes", bind(access::tenant_read, list_routes));
    r.add(v::post, "/api/v1/routes", bind(access::tenant_write, create_route));
    r.add(v::get, "/api/v1/routes/{id}", bind(access::tenant_read, get_route));
    r.add(v::put, "/api/v1/routes/{id}", bind(access::tenant_write, update_route));
    r.add(v::delete_, "/api/v1/routes/{id}", bind(access::tenant_write, delete_route));
    r.add(v::get, "/api/v1/deliveries", bind(access::tenant_read, list_deliveries));
    r.add(v::get, "/api/v1/deliveries/{id}", bind(access::tenant_read, get_delivery));
}

} // namespace pulsegate::webui
