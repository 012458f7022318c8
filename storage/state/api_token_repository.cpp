#include "storage/state/api_token_repository.hpp"

#include "storage/state/connection.hpp"

namespace pulsegate::storage::state {

namespace {

// token_hash is a BLOB column (schema v1); the digest travels as its hex
// text, stored as those bytes (CAST) and read back as text.
#define PULSEGATE_TOKEN_COLUMNS                                                                                       \
    "id, tenant, public_id, name, CAST(token_hash AS TEXT), created_by, created_at, last_used_at, expires_at"

api_token token_from(const detail::statement& s) {
    api_token t;
    t.id = s.int64(0);
    t.tenant = s.optional_text(1);
    t.public_id = s.optional_text(2).value_or(std::string()); // NULL only for rows older than schema v3
    t.name = s.text(3);
    t.token_hash = s.text(4);
    t.created_by = s.optional_int64(5);
    t.created_at_ms = s.int64(6);
    t.last_used_at_ms = s.optional_int64(7);
    t.expires_at_ms = s.optional_int64(8);
    return t;
}

std::string owner(const std::optional<std::string>& tenant) {
    return tenant ? "tenant " + *tenant : std::string("the operators");
}

} // namespace

state_result<std::int64_t> api_token_repository::create(const new_api_token& t) {
    const std::string what = "create API token " + t.name;
    if (t.public_id.empty() || t.token_hash.empty())
        return make_state_error(state_errc::invalid_argument, what + ": the public id or the hash is empty");
    if (t.name.empty())
        return make_state_error(state_errc::invalid_argument, "create API token: the name is empty");
    std::int64_t id = 0;
    auto r = db_->write(what, [&](detail::connection& c) -> state_result<void> {
        if (t.tenant) {
            auto q = c.prepare("SELECT 1 FROM tenants WHERE id = ?", "create API token: look up tenant");
            if (!q)
                return q.error();
            q->bind(1, *t.tenant);
            auto found = q->step();
            if (!found)
                return found.error();
            if (!*found)
                return make_state_error(state_errc::constraint_violation,
                                        what + ": tenant " + *t.tenant + " does not exist");
        }
        if (t.created_by) {
            auto q = c.prepare("SELECT 1 FROM users WHERE id = ?", "create API token: look up user");
            if (!q)
                return q.error();
            q->bind(1, *t.created_by);
            auto found = q->step();
            if (!found)
                return found.error();
            if (!*found)
                return make_state_error(state_errc::constraint_violation,
                                        what + ": the creating user (id " + std::to_string(*t.created_by) +
                                            ") does not exist");
        }
        auto s = c.prepare("INSERT INTO api_tokens (tenant, public_id, name, token_hash, created_by, created_at, "
                           "expires_at) VALUES (?, ?, ?, CAST(? AS BLOB), ?, ?, ?)",
                           "create API token");
        if (!s)
            return s.error();
        s->bind(1, t.tenant).bind(2, t.public_id).bind(3, t.name).bind(4, t.token_hash).bind(5, t.created_by)
            .bind(6, t.created_at_ms).bind(7, t.expires_at_ms);
        if (auto done = s->run(); !done)
            return done;
        id = c.last_insert_rowid();
        return {};
    });
    if (!r) {
        if (r.error().code == state_errc::already_exists)
            return make_state_error(state_errc::already_exists,
                                    what + ": the public id or the token is already in use; generate a new token");
        return r.error();
    }
    return id;
}

state_result<std::optional<api_token>> api_token_repository::find_by_public_id(std::string_view public_id) const {
    std::optional<api_token> out;
    auto r = db_->read("find API token", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_TOKEN_COLUMNS " FROM api_tokens WHERE public_id = ?", "find API token");
        if (!s)
            return s.error();
        s->bind(1, public_id);
        return s->each([&](const detail::statement& row) { out = token_from(row); });
    });
    if (!r)
        return r.error();
    return out;
}

state_result<std::optional<api_token>> api_token_repository::get(const std::optional<std::string>& tenant,
                                                                 std::string_view public_id) const {
    std::optional<api_token> out;
    auto r = db_->read("get API token", [&](detail::connection& c) -> state_result<void> {
        // IS: NULL = NULL for operator tokens.
        auto s = c.prepare("SELECT " PULSEGATE_TOKEN_COLUMNS " FROM api_tokens WHERE tenant IS ? AND public_id = ?",
                           "get API token");
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, public_id);
        return s->each([&](const detail::statement& row) { out = token_from(row); });
    });
    if (!r)
        return r.error();
    return out;
}

state_result<std::vector<api_token>> api_token_repository::list(const std::optional<std::string>& tenant) const {
    std::vector<api_token> out;
    auto r = db_->read("list API tokens", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_TOKEN_COLUMNS " FROM api_tokens WHERE tenant IS ? ORDER BY id",
                           "list API tokens");
        if (!s)
            return s.error();
        s->bind(1, tenant);
        return s->each([&](const detail::statement& row) { out.push_back(token_from(row)); });
    });
    if (!r)
        return r.error();
    return out;
}

state_result<void> api_token_repository::revoke(const std::optional<std::string>& tenant,
                                                std::string_view public_id) {
    return db_->write("revoke API token", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("DELETE FROM api_tokens WHERE tenant IS ? AND public_id = ?", "revoke API token");
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, public_id);
        if (auto done = s->run(); !done)
            return done;
        if (c.changes() == 0)
            return make_state_error(state_errc::not_found, "revoke API token: " + owner(tenant) +
                                                               " has no token " + std::string(public_id));
        return {};
    });
}

state_result<void> api_token_repository::touch_last_used(std::string_view public_id, std::int64_t at_ms) {
    return db_->write("record API token use", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("UPDATE api_tokens SET last_used_at = max(coalesce(last_used_at, ?2), ?2) "
                           "WHERE public_id = ?1",
                           "record API token use");
        if (!s)
            return s.error();
        s->bind(1, public_id).bind(2, at_ms);
        if (auto done = s->run(); !done)
            return done;
        if (c.changes() == 0)
            return make_state_error(state_errc::not_found,
                                    "record API token use: no token " + std::string(public_id) + " (revoked?)");
        return {};
    });
}

state_result<std::int64_t> api_token_repository::remove_expired(std::int64_t now_ms) {
    std::int64_t removed = 0;
    auto r = db_->write("remove expired API tokens", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("DELETE FROM api_tokens WHERE expires_at <= ?", "remove expired API tokens");
        if (!s)
            return s.error();
        s->bind(1, now_ms);
        if (auto done = s->run(); !done)
            return done;
        removed = c.changes();
        return {};
    });
    if (!r)
        return r.error();
    return removed;
}

} // namespace pulsegate::storage::state
