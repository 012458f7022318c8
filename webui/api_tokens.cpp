// API tokens of the caller's tenant:
//
//   GET    /api/v1/tokens?limit=&cursor=   [{"id","name","created_at","expires_at","last_used_at","expired"}]
//   POST   /api/v1/tokens                  {"name","expires_at"?} -> 201 {"id","name","token","created_at","expires_at"}
//   DELETE /api/v1/tokens/{id}             204
//
// "id" is the token's public id (the 12 characters after "pgt_"); the token
// text is shown once, by POST, and only its keyed digest is stored.
// expires_at is an RFC 3339 time or epoch milliseconds, in the future; absent
// or null: the token never expires. Revoking tells identity_hooks, so that
// MQTT integrators using the token are dropped at once.

#include "webui/api.hpp"
#include "webui/api_common.hpp"
#include "webui/pagination.hpp"

#include "storage/state/api_token_repository.hpp"

#include <boost/json/array.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <vector>

namespace pulsegate::webui {

namespace {

namespace state = storage::state;
using namespace detail;

// The public id of a token: engine::api_token_public_id_length characters of
// the token alphabet (Crockford base32, lower case).
engine::validation validate_public_id(std::string_view id) {
    constexpr std::string_view alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
    const bool ok = id.size() == engine::api_token_public_id_length &&
                    id.find_first_not_of(alphabet) == std::string_view::npos;
    if (ok) return {};
    return {"token id must be the " + std::to_string(engine::api_token_public_id_length) +
            " characters after \"pgt_\" in a token (as GET /api/v1/tokens lists them)"};
}

json::object token_json(const state::api_token& t, std::int64_t now) {
    json::object o;
    o["id"] = t.public_id;
    o["name"] = t.name;
    o["created_at"] = rfc3339(t.created_at_ms);
    o["expires_at"] = rfc3339_or_null(t.expires_at_ms);
    o["last_used_at"] = rfc3339_or_null(t.last_used_at_ms);
    o["expired"] = !t.active_at(now);
    return o;
}

// expires_at: RFC 3339 text or epoch ms; nullopt when absent or null.
api_result<std::optional<std::int64_t>> parse_expiry(const json::object& body, std::int64_t now) {
    const auto* v = body.if_contains("expires_at");
    if (v == nullptr || v->is_null()) return std::optional<std::int64_t>();
    std::optional<std::int64_t> at;
    if (v->is_string()) {
        at = parse_rfc3339(v->get_string());
    } else if (v->is_int64()) {
        at = v->get_int64();
    } else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        at = static_cast<std::int64_t>(v->get_uint64());
    }
    if (!at)
        return api_error::invalid_argument(
            "expires_at", "expires_at must be an RFC 3339 time such as \"2027-01-31T00:00:00Z\" or epoch "
                          "milliseconds, or null for a token that never expires");
    if (*at <= now)
        return api_error::invalid_argument("expires_at", "expires_at (" + rfc3339(*at) +
                                                             ") is not in the future; choose a later time");
    return at;
}

response list_tokens(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto page = parse_page(ctx);
    if (!page) return to_response(page.error());
    // A cursor is the row id of the last token shown: tokens are listed
    // oldest first (by row id), so it stays valid while tokens come and go.
    std::int64_t after = 0;
    if (!page->cursor.empty()) {
        const auto& cur = page->cursor;
        const auto [ptr, ec] = std::from_chars(cur.data(), cur.data() + cur.size(), after);
        if (ec != std::errc() || ptr != cur.data() + cur.size() || after < 0)
            return to_response(api_error::invalid_argument(
                "cursor", "cursor is not one this list made; pass back next_cursor unchanged"));
    }
    auto all = state::api_token_repository(*s.db).list(std::optional<std::string>(*tenant));
    if (!all) return to_response(from_state(all.error(), "list API tokens"));
    std::vector<const state::api_token*> shown;
    for (const auto& t : *all)
        if (t.id > after) shown.push_back(&t);
    std::sort(shown.begin(), shown.end(), [](const auto* x, const auto* y) { return x->id < y->id; });
    std::optional<std::string> next;
    if (shown.size() > page->limit) {
        shown.resize(page->limit);
        next = std::to_string(shown.back()->id);
    }
    const auto now = now_ms();
    json::array items;
    for (const auto* t : shown) items.push_back(token_json(*t, now));
    return list_response(std::move(items), std::move(next));
}

response create_token(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto body = body_object(ctx);
    if (!body) return to_response(body.error());
    auto name = required_string(*body, "name");
    if (!name) return to_response(name.error());
    if (auto ok = engine::validate_display_name(*name); !ok) return to_response(invalid("name", ok));
    const auto now = now_ms();
    auto expires = parse_expiry(*body, now);
    if (!expires) return to_response(expires.error());

    state::api_token_repository tokens(*s.db);
    // 60 + 160 random bits: a collision is all but impossible, but a retry
    // costs nothing.
    for (int attempt = 0;; ++attempt) {
        const auto parts = engine::generate_api_token();
        const auto text = parts.text();
        state::new_api_token t{*tenant, parts.public_id, *name, engine::credential_digest(*s.key, text), *expires,
                               c.user_id, now};
        auto r = tokens.create(t);
        if (!r && r.error().code == state::state_errc::already_exists && attempt < 3) continue;
        if (!r) return to_response(from_state(r.error(), "create API token"));
        json::object o;
        o["id"] = parts.public_id;
        o["name"] = *name;
        o["token"] = text;
        o["created_at"] = rfc3339(now);
        o["expires_at"] = rfc3339_or_null(*expires);
        auto res = json_response(o, http::status::created);
        res.headers.emplace_back("Location", "/api/v1/tokens/" + parts.public_id);
        return res;
    }
}

response revoke_token(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_id(ctx, "id", "id", validate_public_id);
    if (!id) return to_response(id.error());
    if (auto r = state::api_token_repository(*s.db).revoke(std::optional<std::string>(*tenant), *id); !r) {
        if (r.error().code == state::state_errc::not_found)
            return to_response(api_error::not_found("no API token \"" + *id +
                                                    "\" in your tenant; GET /api/v1/tokens lists yours"));
        return to_response(from_state(r.error(), "revoke API token"));
    }
    if (s.hooks != nullptr) s.hooks->token_revoked(std::optional<std::string_view>(*tenant), *id);
    return response{http::status::no_content, {}, {}, {}};
}

} // namespace

void add_token_routes(router& r, auth& a, const api_services& s) {
    BOOST_ASSERT(s.db != nullptr && s.key != nullptr);
    auto bind = [&](access need, detail::api_handler fn) { return detail::guarded(a, s, need, fn); };
    r.add(http::verb::get, "/api/v1/tokens", bind(access::tenant_read, list_tokens));
    r.add(http::verb::post, "/api/v1/tokens", bind(access::tenant_write, create_token));
    r.add(http::verb::delete_, "/api/v1/tokens/{id}", bind(access::tenant_write, revoke_token));
}

} // namespace pulsegate::webui
