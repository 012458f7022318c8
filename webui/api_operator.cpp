// Operator routes (no tenant of their own; they see every tenant):
//
//   GET|POST        /api/v1/operator/tenants            {"id","name"?} -> 201
//   GET|PATCH|DELETE /api/v1/operator/tenants/{id}      PATCH {"name"?,"disabled"?}; DELETE ?cascade=true
//   GET|POST        /api/v1/operator/users?tenant=      {"username","password","role","tenant"?} -> 201
//   GET|PATCH|DELETE /api/v1/operator/users/{username}  PATCH {"password"?,"disabled"?}
//   GET             /api/v1/operator/devices?tenant=
//   GET             /api/v1/operator/alerts?tenant=&status=&severity=&device=&kind=&rule=&from=&to=
//   GET             /api/v1/operator/audit?tenant=&actor=
//   GET             /api/v1/operator/rejected?tenant=
//
// Every access is written to the audit log first: the entry (actor, the
// tenant concerned, action, target, and details with the caller's address,
// the query and the non-secret body members; never a password) is appended
// before any input is checked or any data read or written. If it cannot be
// appended the route answers 503 and does nothing else: no entry, no data.
//
// Deleting a tenant is refused (409, naming what is left) while it still
// has devices or users; ?cascade=true removes it with everything in it in
// one transaction (devices, users, tokens, rules, alerts...); the audit log
// keeps its history either way. The last enabled operator_admin can be
// neither disabled nor deleted (409).

#include "webui/api.hpp"
#include "webui/api_common.hpp"
#include "webui/pagination.hpp"

#include "engine/alert_json.hpp"
#include "storage/state/alert_repository.hpp"
#include "storage/state/audit_repository.hpp"
#include "storage/state/device_repository.hpp"
#include "storage/state/rejected_event_repository.hpp"
#include "storage/state/tenant_repository.hpp"
#include "storage/state/user_repository.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <vector>

namespace pulsegate::webui {

namespace {

namespace state = storage::state;
using namespace detail;

constexpr std::size_t max_audited_value = 128; // bytes of one query or body value kept in an entry
constexpr std::size_t max_audited_params = 16;
constexpr std::size_t max_actor_filter = 256;

std::string clip(std::string_view s) { return std::string(s.substr(0, max_audited_value)); }

// What an operator route writes to the audit log before anything else.
struct audit_note {
    std::string action;                // "tenant.list", "user.create", ...
    std::optional<std::string> tenant; // the tenant concerned (only a valid id)
    std::string target;                // "tenant:acme", "user:alice", "" for lists
    json::object details{};            // route-specific additions
};

std::optional<std::string> valid_tenant(std::optional<std::string_view> id) {
    if (!id || !engine::validate_tenant_id(*id)) return std::nullopt;
    return std::string(*id);
}

// Non-secret members of a request body, for the audit entry: strings
// (clipped) and booleans of the listed names; "password" only as present.
json::object audited_body(const api_result<json::object>& body, std::initializer_list<std::string_view> names) {
    json::object out;
    if (!body) {
        out["invalid"] = true;
        return out;
    }
    for (auto n : names) {
        const auto* v = body->if_contains(n);
        if (v == nullptr) continue;
        if (v->is_string()) out[n] = clip(v->get_string());
        else if (v->is_bool()) out[n] = v->get_bool();
    }
    if (body->contains("password")) out["password_set"] = true;
    return out;
}

// Appends the entry; 503 (and the route does nothing else) if it cannot.
api_result<void> audit_first(const api_services& s, const caller& c, const request_context& ctx, audit_note n) {
    json::object details = std::move(n.details);
    details["remote"] = c.remote;
    details["method"] = std::string(http::to_string(ctx.method));
    json::object query;
    std::size_t kept = 0;
    for (const auto& [k, v] : ctx.query) {
        if (kept++ == max_audited_params) break;
        if (k == "cursor") continue; // opaque and long; says nothing about intent
        query[clip(k)] = clip(v);
    }
    if (!query.empty()) details["query"] = std::move(query);
    state::audit_entry e;
    e.at_ms = now_ms();
    e.actor = c.actor();
    e.tenant = std::move(n.tenant);
    e.action = std::move(n.action);
    e.target = std::move(n.target);
    e.details_json = json::serialize(details);
    if (auto r = state::audit_repository(*s.db).append(e); !r)
        return unavailable("the audit log cannot be written (" + r.error().message +
                           "); operator routes do nothing without their audit entry, so nothing was read or "
                           "changed; check the disk, then retry");
    return {};
}

json::object tenant_json(const state::tenant& t) {
    json::object o;
    o["id"] = t.id;
    o["name"] = t.name;
    o["disabled"] = t.disabled;
    o["created_at"] = rfc3339(t.created_at_ms);
    return o;
}

json::object user_json(const state::user& u) {
    json::object o;
    o["username"] = u.name;
    o["role"] = std::string(state::to_string(u.role));
    o["tenant"] = u.tenant ? json::value(*u.tenant) : json::value(nullptr);
    o["disabled"] = u.disabled;
    o["created_at"] = rfc3339(u.created_at_ms);
    o["last_login_at"] = rfc3339_or_null(u.last_login_at_ms);
    return o;
}

api_error no_tenant(std::string_view id) {
    return api_error::not_found("no tenant \"" + std::string(id) + "\"; GET /api/v1/operator/tenants lists them");
}

api_error no_user(std::string_view name) {
    return api_error::not_found("no user \"" + std::string(name) + "\"; GET /api/v1/operator/users lists them");
}

api_error bad_cursor() {
    return api_error::invalid_argument("cursor", "cursor is not one this list made; pass back next_cursor "
                                                 "unchanged, or none for the first page");
}

// ?tenant= of the list routes: nullopt when absent; 400 when not a tenant id.
api_result<std::optional<std::string>> tenant_filter(const request_context& ctx) {
    const auto t = ctx.query_param("tenant");
    if (!t) return std::optional<std::string>();
    if (auto ok = engine::validate_tenant_id(*t); !ok) return invalid("tenant", ok);
    return std::optional<std::string>(std::string(*t));
}

// A before_id cursor (audit log, rejected events): a positive row id.
api_result<std::optional<std::int64_t>> before_id_cursor(const page_request& page) {
    if (page.cursor.empty()) return std::optional<std::int64_t>();
    std::int64_t id = 0;
    const auto* end = page.cursor.data() + page.cursor.size();
    const auto [ptr, ec] = std::from_chars(page.cursor.data(), end, id);
    if (ec != std::errc() || ptr != end || id <= 0) return bad_cursor();
    return std::optional<std::int64_t>(id);
}

// For newest-first lists read with `fetch` = min(limit + 1, repository max):
// trims to the page and tells whether another may follow.
template <class Row>
std::optional<std::string> trim_newest_first(std::vector<Row>& rows, std::size_t limit, std::size_t fetch) {
    if (rows.size() > limit) {
        rows.resize(limit);
        return std::to_string(rows.back().id);
    }
    // Could not ask for one more than the page: a full page may have more.
    if (fetch == limit && rows.size() == limit && !rows.empty()) return std::to_string(rows.back().id);
    return std::nullopt;
}

constexpr std::size_t repository_max_limit = 1000;

// ---- tenants ------------------------------------------------------------------

response list_tenants(const api_services& s, const caller& c, const request_context& ctx) {
    if (auto a = audit_first(s, c, ctx, {"tenant.list", std::nullopt, ""}); !a) return to_response(a.error());
    auto page = parse_page(ctx);
    if (!page) return to_response(page.error());
    if (!page->cursor.empty() && !engine::validate_tenant_id(page->cursor)) return to_response(bad_cursor());
    auto all = state::tenant_repository(*s.db).list();
    if (!all) return to_response(from_state(all.error(), "list tenants"));
    json::array items;
    std::optional<std::string> next;
    for (const auto& t : *all) { // by id
        if (!page->cursor.empty() && t.id <= page->cursor) continue;
        if (items.size() == page->limit) {
            next = std::string(items.back().as_object().at("id").as_string());
            break;
        }
        items.push_back(tenant_json(t));
    }
    return list_response(std::move(items), std::move(next));
}

response create_tenant(const api_services& s, const caller& c, const request_context& ctx) {
    auto body = body_object(ctx);
    const auto* raw_id = body ? body->if_contains("id") : nullptr;
    const std::optional<std::string_view> id_text =
        raw_id != nullptr && raw_id->is_string() ? std::optional<std::string_view>(raw_id->get_string()) : std::nullopt;
    if (auto a = audit_first(s, c, ctx,
                             {"tenant.create", valid_tenant(id_text), id_text ? "tenant:" + clip(*id_text) : "",
                              audited_body(body, {"id", "name"})});
        !a)
        return to_response(a.error());
    if (!body) return to_response(body.error());
    auto id = required_string(*body, "id");
    if (!id) return to_response(id.error());
    if (auto ok = engine::validate_tenant_id(*id); !ok) return to_response(invalid("id", ok));
    auto name = optional_string(*body, "name");
    if (!name) return to_response(name.error());
    const std::string display = name->value_or(*id);
    if (auto ok = engine::validate_display_name(display); !ok) return to_response(invalid("name", ok));

    state::tenant t{*id, display, now_ms(), false};
    if (auto r = state::tenant_repository(*s.db).create(t); !r) {
        if (r.error().code == state::state_errc::already_exists)
            return to_response(api_error::conflict("a tenant with id \"" + *id + "\" exists already; choose another id"));
        return to_response(from_state(r.error(), "create tenant"));
    }
    auto res = json_response(tenant_json(t), http::status::created);
    res.headers.emplace_back("Location", "/api/v1/operator/tenants/" + *id);
    return res;
}

// The {id} of a tenant route, audited as its target before it is checked.
audit_note tenant_note(std::string action, const request_context& ctx, json::object details = {}) {
    const auto id = ctx.path_param("id");
    return {std::move(action), valid_tenant(id), "tenant:" + clip(id), std::move(details)};
}

response get_tenant(const api_services& s, const caller& c, const request_context& ctx) {
    if (auto a = audit_first(s, c, ctx, tenant_note("tenant.get", ctx)); !a) return to_response(a.error());
    auto id = path_id(ctx, "id", "id", engine::validate_tenant_id);
    if (!id) return to_response(id.error());
    state::tenant_repository tenants(*s.db);
    auto t = tenants.get(*id);
    if (!t) return to_response(from_state(t.error(), "get tenant"));
    if (!*t) return to_response(no_tenant(*id));
    auto n = tenants.contents(*id);
    if (!n) return to_response(from_state(n.error(), "count tenant contents"));
    auto o = tenant_json(**t);
    o["devices"] = n->devices;
    o["users"] = n->users;
    o["api_tokens"] = n->api_tokens;
    return json_response(o);
}

response patch_tenant(const api_services& s, const caller& c, const request_context& ctx) {
    auto body = body_object(ctx);
    if (auto a = audit_first(s, c, ctx, tenant_note("tenant.update", ctx, audited_body(body, {"name", "disabled"})));
        !a)
        return to_response(a.error());
    auto id = path_id(ctx, "id", "id", engine::validate_tenant_id);
    if (!id) return to_response(id.error());
    if (!body) return to_response(body.error());
    auto name = optional_string(*body, "name");
    if (!name) return to_response(name.error());
    if (*name)
        if (auto ok = engine::validate_display_name(**name); !ok) return to_response(invalid("name", ok));
    auto disabled = optional_bool(*body, "disabled");
    if (!disabled) return to_response(disabled.error());

    state::tenant_repository tenants(*s.db);
    auto before = tenants.get(*id);
    if (!before) return to_response(from_state(before.error(), "get tenant"));
    if (!*before) return to_response(no_tenant(*id));
    if (auto r = tenants.update(*id, {*name, *disabled}); !r) {
        if (r.error().code == state::state_errc::not_found) return to_response(no_tenant(*id));
        return to_response(from_state(r.error(), "update tenant"));
    }
    if (*disabled && **disabled != (*before)->disabled && s.hooks != nullptr) s.hooks->tenant_changed(*id);
    auto after = tenants.get(*id);
    if (!after) return to_response(from_state(after.error(), "get tenant"));
    if (!*after) return to_response(no_tenant(*id)); // removed meanwhile
    return json_response(tenant_json(**after));
}

response delete_tenant(const api_services& s, const caller& c, const request_context& ctx) {
    if (auto a = audit_first(s, c, ctx, tenant_note("tenant.delete", ctx)); !a) return to_response(a.error());
    auto id = path_id(ctx, "id", "id", engine::validate_tenant_id);
    if (!id) return to_response(id.error());
    const auto cascade_text = ctx.query_param("cascade");
    if (cascade_text && *cascade_text != "true" && *cascade_text != "false")
        return to_response(api_error::invalid_argument("cascade", "cascade must be true or false"));
    const bool cascade = cascade_text == "true";

    // The users who go with the tenant, to tell the hooks afterwards.
    std::vector<state::user> users;
    if (cascade) {
        auto u = state::user_repository(*s.db).list_in_tenant(*id);
        if (!u) return to_response(from_state(u.error(), "list the tenant's users"));
        users = std::move(*u);
    }
    auto r = state::tenant_repository(*s.db).remove(
        *id, cascade ? state::tenant_removal::cascade : state::tenant_removal::refuse_if_in_use);
    if (!r) {
        if (r.error().code == state::state_errc::not_found) return to_response(no_tenant(*id));
        if (r.error().code == state::state_errc::constraint_violation)
            return to_response(api_error::conflict(
                r.error().message + " (tenant users: DELETE /api/v1/operator/users/{username}; devices: "
                                    "DELETE /api/v1/devices/{id} as the tenant's admin); or DELETE "
                                    "/api/v1/operator/tenants/" + *id + "?cascade=true to remove everything"));
        return to_response(from_state(r.error(), "remove tenant"));
    }
    if (s.hooks != nullptr) {
        s.hooks->tenant_changed(*id);
        for (const auto& u : users) s.hooks->user_changed(u.name);
    }
    return response{http::status::no_content, {}, {}, {}};
}

// ---- users --------------------------------------------------------------------

audit_note user_note(std::string action, const request_context& ctx, json::object details = {}) {
    const auto name = ctx.path_param("username");
    return {std::move(action), std::nullopt, "user:" + clip(name), std::move(details)};
}

response list_users(const api_services& s, const caller& c, const request_context& ctx) {
    if (auto a = audit_first(s, c, ctx, {"user.list", valid_tenant(ctx.query_param("tenant")), ""}); !a)
        return to_response(a.error());
    auto page = parse_page(ctx);
    if (!page) return to_response(page.error());
    if (!page->cursor.empty() && !engine::validate_user_name(page->cursor)) return to_response(bad_cursor());
    auto tenant = tenant_filter(ctx);
    if (!tenant) return to_response(tenant.error());
    state::user_repository repo(*s.db);
    auto all = *tenant ? repo.list_in_tenant(**tenant) : repo.list();
    if (!all) return to_response(from_state(all.error(), "list users"));
    // By name (unique), so that a name is a stable cursor.
    std::sort(all->begin(), all->end(), [](const auto& x, const auto& y) { return x.name < y.name; });
    json::array items;
    std::optional<std::string> next;
    for (const auto& u : *all) {
        if (!page->cursor.empty() && u.name <= page->cursor) continue;
        if (items.size() == page->limit) {
            next = std::string(items.back().as_object().at("username").as_string());
            break;
        }
        items.push_back(user_json(u));
    }
    return list_response(std::move(items), std::move(next));
}

response create_user(const api_services& s, const caller& c, const request_context& ctx) {
    auto body = body_object(ctx);
    std::optional<std::string_view> name_text, tenant_text;
    if (body) {
        if (const auto* v = body->if_contains("username"); v != nullptr && v->is_string()) name_text = v->get_string();
        if (const auto* v = body->if_contains("tenant"); v != nullptr && v->is_string()) tenant_text = v->get_string();
    }
    if (auto a = audit_first(s, c, ctx,
                             {"user.create", valid_tenant(tenant_text), name_text ? "user:" + clip(*name_text) : "",
                              audited_body(body, {"username", "role", "tenant"})});
        !a)
        return to_response(a.error());
    if (!body) return to_response(body.error());
    auto username = required_string(*body, "username");
    if (!username) return to_response(username.error());
    if (auto ok = engine::validate_user_name(*username); !ok) return to_response(invalid("username", ok));
    auto password = required_string(*body, "password");
    if (!password) return to_response(password.error());
    if (auto ok = engine::validate_password(*password); !ok) return to_response(invalid("password", ok));
    auto role = required_string(*body, "role");
    if (!role) return to_response(role.error());
    if (auto ok = engine::validate_role(*role); !ok) return to_response(invalid("role", ok));
    auto tenant = optional_string(*body, "tenant");
    if (!tenant) return to_response(tenant.error());
    if (auto ok = engine::validate_role_tenant(*role, *tenant); !ok) return to_response(invalid("tenant", ok));

    state::new_user u{*tenant, *username, *state::parse_user_role(*role), engine::hash_password(*password), now_ms()};
    state::user_repository users(*s.db);
    auto id = users.create(u);
    if (!id) {
        if (id.error().code == state::state_errc::already_exists)
            return to_response(api_error::conflict("a user named \"" + *username +
                                                   "\" exists already (user names are unique across tenants); "
                                                   "choose another"));
        if (id.error().code == state::state_errc::constraint_violation && *tenant)
            return to_response(api_error::invalid_argument(
                "tenant", "tenant \"" + **tenant + "\" does not exist; create it first (POST /api/v1/operator/tenants)"));
        return to_response(from_state(id.error(), "create user"));
    }
    auto created = users.get(*id);
    if (!created) return to_response(from_state(created.error(), "get user"));
    if (!*created) return to_response(no_user(*username)); // removed meanwhile
    auto res = json_response(user_json(**created), http::status::created);
    res.headers.emplace_back("Location", "/api/v1/operator/users/" + *username);
    return res;
}

// The user named by {username}: 400 for a malformed name, 404 for none.
api_result<state::user> load_user(const api_services& s, const request_context& ctx) {
    auto name = path_id(ctx, "username", "username", engine::validate_user_name);
    if (!name) return name.error();
    auto u = state::user_repository(*s.db).get_by_name(*name);
    if (!u) return from_state(u.error(), "get user");
    if (!*u) return no_user(*name);
    return std::move(**u);
}

response get_user(const api_services& s, const caller& c, const request_context& ctx) {
    if (auto a = audit_first(s, c, ctx, user_note("user.get", ctx)); !a) return to_response(a.error());
    auto u = load_user(s, ctx);
    if (!u) return to_response(u.error());
    return json_response(user_json(*u));
}

response patch_user(const api_services& s, const caller& c, const request_context& ctx) {
    auto body = body_object(ctx);
    if (auto a = audit_first(s, c, ctx, user_note("user.update", ctx, audited_body(body, {"disabled"}))); !a)
        return to_response(a.error());
    if (!body) return to_response(body.error());
    auto password = optional_string(*body, "password");
    if (!password) return to_response(password.error());
    if (*password)
        if (auto ok = engine::validate_password(**password); !ok) return to_response(invalid("password", ok));
    auto disabled = optional_bool(*body, "disabled");
    if (!disabled) return to_response(disabled.error());
    auto u = load_user(s, ctx);
    if (!u) return to_response(u.error());

    state::user_update change;
    if (*password) change.password_hash = engine::hash_password(**password);
    change.disabled = *disabled;
    state::user_repository users(*s.db);
    if (auto r = users.update(u->id, change); !r) {
        if (r.error().code == state::state_errc::not_found) return to_response(no_user(u->name));
        if (r.error().code == state::state_errc::constraint_violation)
            return to_response(api_error::conflict("user \"" + u->name +
                                                   "\" is the last enabled operator_admin and cannot be disabled; "
                                                   "create or enable another operator_admin first"));
        return to_response(from_state(r.error(), "update user"));
    }
    if ((*password || (*disabled && **disabled != u->disabled)) && s.hooks != nullptr) s.hooks->user_changed(u->name);
    auto after = users.get(u->id);
    if (!after) return to_response(from_state(after.error(), "get user"));
    if (!*after) return to_response(no_user(u->name));
    return json_response(user_json(**after));
}

response delete_user(const api_services& s, const caller& c, const request_context& ctx) {
    if (auto a = audit_first(s, c, ctx, user_note("user.delete", ctx)); !a) return to_response(a.error());
    auto u = load_user(s, ctx);
    if (!u) return to_response(u.error());
    if (auto r = state::user_repository(*s.db).remove(u->id); !r) {
        if (r.error().code == state::state_errc::not_found) return to_response(no_user(u->name));
        if (r.error().code == state::state_errc::constraint_violation)
            return to_response(api_error::conflict("user \"" + u->name +
                                                   "\" is the last enabled operator_admin and cannot be deleted; "
                                                   "create or enable another operator_admin first"));
        return to_response(from_state(r.error(), "remove user"));
    }
    if (s.hooks != nullptr) s.hooks->user_changed(u->name);
    return response{http::status::no_content, {}, {}, {}};
}

// ---- devices, audit log, rejected events --------------------------------------

response list_all_devices(const api_services& s, const caller& c, const request_context& ctx) {
    if (auto a = audit_first(s, c, ctx, {"device.list", valid_tenant(ctx.query_param("tenant")), ""}); !a)
        return to_response(a.error());
    auto page = parse_page(ctx);
    if (!page) return to_response(page.error());
    auto tenant = tenant_filter(ctx);
    if (!tenant) return to_response(tenant.error());
    const auto cursor = page->cursor.empty() ? std::nullopt : std::optional<std::string_view>(page->cursor);
    const auto only = *tenant ? std::optional<std::string_view>(**tenant) : std::nullopt;
    auto got = state::device_repository(*s.db).list_all(page->limit, cursor, only);
    if (!got) {
        if (got.error().code == state::state_errc::invalid_argument) return to_response(bad_cursor());
        return to_response(from_state(got.error(), "list devices"));
    }
    json::array items;
    for (const auto& d : got->items) items.push_back(device_json(d, true));
    return list_response(std::move(items), std::move(got->next_cursor));
}

// The filters as GET /api/v1/alerts takes them, over every tenant (or one).
response list_all_alerts(const api_services& s, const caller& c, const request_context& ctx) {
    if (auto a = audit_first(s, c, ctx, {"alert.list", valid_tenant(ctx.query_param("tenant")), ""}); !a)
        return to_response(a.error());
    auto page = parse_page(ctx);
    if (!page) return to_response(page.error());
    auto tenant = tenant_filter(ctx);
    if (!tenant) return to_response(tenant.error());
    auto filter = alert_filter_of(ctx);
    if (!filter) return to_response(filter.error());
    const auto cursor = page->cursor.empty() ? std::nullopt : std::optional<std::string_view>(page->cursor);
    const auto only = *tenant ? std::optional<std::string_view>(**tenant) : std::nullopt;
    auto got = state::alert_repository(*s.db).list_all(*filter, page->limit, cursor, only);
    if (!got) {
        if (got.error().code == state::state_errc::invalid_argument) return to_response(bad_cursor());
        return to_response(from_state(got.error(), "list alerts"));
    }
    json::array items;
    for (const auto& a : got->items) items.push_back(engine::alert_json(a));
    return list_response(std::move(items), std::move(got->next_cursor));
}

response list_audit(const api_services& s, const caller& c, const request_context& ctx) {
    if (auto a = audit_first(s, c, ctx, {"audit.list", valid_tenant(ctx.query_param("tenant")), ""}); !a)
        return to_response(a.error());
    auto page = parse_page(ctx);
    if (!page) return to_response(page.error());
    auto before = before_id_cursor(*page);
    if (!before) return to_response(before.error());
    auto tenant = tenant_filter(ctx);
    if (!tenant) return to_response(tenant.error());
    const auto actor = ctx.query_param("actor");
    if (actor && (actor->empty() || actor->size() > max_actor_filter))
        return to_response(api_error::invalid_argument(
            "actor", "actor must be 1 to " + std::to_string(max_actor_filter) +
                         " characters, as entries show it (\"user:alice\", \"token:<id>\")"));

    const auto fetch = std::min(page->limit + 1, repository_max_limit);
    state::audit_query q;
    q.tenant = *tenant;
    if (actor) q.actor = std::string(*actor);
    q.before_id = *before;
    q.limit = fetch;
    auto rows = state::audit_repository(*s.db).list_recent(q);
    if (!rows) return to_response(from_state(rows.error(), "list the audit log"));
    auto next = trim_newest_first(*rows, page->limit, fetch);
    json::array items;
    for (const auto& e : *rows) {
        json::object o;
        o["id"] = e.id;
        o["at"] = rfc3339(e.at_ms);
        o["actor"] = e.actor;
        o["tenant"] = e.tenant ? json::value(*e.tenant) : json::value(nullptr);
        o["action"] = e.action;
        o["target"] = e.target;
        // The column holds JSON (a CHECK); should it not parse, show the text.
        boost::system::error_code ec;
        auto details = json::parse(e.details_json, ec);
        o["details"] = ec ? json::value(e.details_json) : std::move(details);
        items.push_back(std::move(o));
    }
    return list_response(std::move(items), std::move(next));
}

response list_rejected(const api_services& s, const caller& c, const request_context& ctx) {
    if (auto a = audit_first(s, c, ctx, {"rejected.list", valid_tenant(ctx.query_param("tenant")), ""}); !a)
        return to_response(a.error());
    auto page = parse_page(ctx);
    if (!page) return to_response(page.error());
    auto before = before_id_cursor(*page);
    if (!before) return to_response(before.error());
    auto tenant = tenant_filter(ctx);
    if (!tenant) return to_response(tenant.error());

    const auto fetch = std::min(page->limit + 1, repository_max_limit);
    state::rejected_event_query q;
    q.tenant = *tenant;
    q.before_id = *before;
    q.limit = fetch;
    auto rows = state::rejected_event_repository(*s.db).list_recent(q);
    if (!rows) return to_response(from_state(rows.error(), "list rejected events"));
    auto next = trim_newest_first(*rows, page->limit, fetch);
    json::array items;
    for (const auto& e : *rows) {
        json::object o;
        o["id"] = e.id;
        o["at"] = rfc3339(e.at_ms);
        o["tenant"] = e.tenant ? json::value(*e.tenant) : json::value(nullptr);
        o["principal"] = e.principal;
        o["kind"] = e.kind;
        o["topic"] = e.topic;
        o["reason"] = e.reason;
        items.push_back(std::move(o));
    }
    return list_response(std::move(items), std::move(next));
}

} // namespace

void add_operator_routes(router& r, auth& a, const api_services& s) {
    BOOST_ASSERT(s.db != nullptr);
    auto bind = [&](access need, detail::api_handler fn) { return detail::guarded(a, s, need, fn); };
    using v = http::verb;
    constexpr auto read = access::operator_read;
    constexpr auto write = access::operator_write;
    r.add(v::get, "/api/v1/operator/tenants", bind(read, list_tenants));
    r.add(v::post, "/api/v1/operator/tenants", bind(write, create_tenant));
    r.add(v::get, "/api/v1/operator/tenants/{id}", bind(read, get_tenant));
    r.add(v::patch, "/api/v1/operator/tenants/{id}", bind(write, patch_tenant));
    r.add(v::delete_, "/api/v1/operator/tenants/{id}", bind(write, delete_tenant));
    r.add(v::get, "/api/v1/operator/users", bind(read, list_users));
    r.add(v::post, "/api/v1/operator/users", bind(write, create_user));
    r.add(v::get, "/api/v1/operator/users/{username}", bind(read, get_user));
    r.add(v::patch, "/api/v1/operator/users/{username}", bind(write, patch_user));
    r.add(v::delete_, "/api/v1/operator/users/{username}", bind(write, delete_user));
    r.add(v::get, "/api/v1/operator/devices", bind(read, list_all_devices));
    r.add(v::get, "/api/v1/operator/alerts", bind(read, list_all_alerts));
    r.add(v::get, "/api/v1/operator/audit", bind(read, list_audit));
    r.add(v::get, "/api/v1/operator/rejected", bind(read, list_rejected));
}

} // namespace pulsegate::webui
