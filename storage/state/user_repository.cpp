#include "storage/state/user_repository.hpp"

#include "storage/state/connection.hpp"

#include <array>
#include <utility>

namespace pulsegate::storage::state {

namespace {

constexpr std::array<std::pair<user_role, std::string_view>, 4> role_names{{
    {user_role::operator_admin, "operator_admin"},
    {user_role::operator_, "operator"},
    {user_role::tenant_admin, "tenant_admin"},
    {user_role::tenant_viewer, "tenant_viewer"},
}};

#define PULSEGATE_USER_COLUMNS "id, tenant, name, role, password_hash, created_at, disabled, last_login_at"

user user_from(const detail::statement& s) {
    user u;
    u.id = s.int64(0);
    u.tenant = s.optional_text(1);
    u.name = s.text(2);
    // The CHECK constraint admits only known names.
    u.role = parse_user_role(s.text(3)).value_or(user_role::tenant_viewer);
    u.password_hash = s.text(4);
    u.created_at_ms = s.int64(5);
    u.disabled = s.int64(6) != 0;
    u.last_login_at_ms = s.optional_int64(7);
    return u;
}

state_result<std::optional<user>> get_one(const database& db, std::string_view sql, std::string_view operation,
                                          auto bind) {
    std::optional<user> out;
    auto r = db.read(operation, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare(sql, operation);
        if (!s)
            return s.error();
        bind(*s);
        return s->each([&](const detail::statement& row) { out = user_from(row); });
    });
    if (!r)
        return r.error();
    return out;
}

state_result<std::vector<user>> get_many(const database& db, std::string_view sql, std::string_view operation,
                                         auto bind) {
    std::vector<user> out;
    auto r = db.read(operation, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare(sql, operation);
        if (!s)
            return s.error();
        bind(*s);
        return s->each([&](const detail::statement& row) { out.push_back(user_from(row)); });
    });
    if (!r)
        return r.error();
    return out;
}

// Refuses when user `id` is the last enabled operator_admin (the caller is
// about to disable or remove it). Runs inside the caller's write.
state_result<void> keep_an_operator_admin(detail::connection& c, std::int64_t id, std::string_view what) {
    auto s = c.prepare("SELECT (SELECT count(*) FROM users WHERE role = 'operator_admin' AND disabled = 0 AND id <> ?1), "
                       "(SELECT count(*) FROM users WHERE id = ?1 AND role = 'operator_admin' AND disabled = 0)",
                       "check the remaining operator admins");
    if (!s)
        return s.error();
    s->bind(1, id);
    std::int64_t others = 0, self = 0;
    if (auto r = s->each([&](const detail::statement& row) {
            others = row.int64(0);
            self = row.int64(1);
        });
        !r)
        return r;
    if (self > 0 && others == 0)
        return make_state_error(state_errc::constraint_violation,
                                std::string(what) + ": it is the last enabled operator_admin; create or enable "
                                                    "another operator_admin first");
    return {};
}

state_error no_user(std::string_view what, std::int64_t id) {
    return make_state_error(state_errc::not_found, std::string(what) + ": no user with id " + std::to_string(id));
}

} // namespace

std::string_view to_string(user_role r) noexcept {
    for (const auto& [role, name] : role_names)
        if (role == r)
            return name;
    return "unknown";
}

std::optional<user_role> parse_user_role(std::string_view s) noexcept {
    for (const auto& [role, name] : role_names)
        if (name == s)
            return role;
    return std::nullopt;
}

state_result<std::int64_t> user_repository::create(const new_user& u) {
    const std::string what = "create user " + u.name;
    if (u.name.empty())
        return make_state_error(state_errc::invalid_argument, "create user: the user name is empty");
    if (u.password_hash.empty())
        return make_state_error(state_errc::invalid_argument, what + ": the password hash is empty");
    if (is_operator_role(u.role) && u.tenant)
        return make_state_error(state_errc::invalid_argument,
                                what + ": role " + std::string(to_string(u.role)) + " takes no tenant");
    if (!is_operator_role(u.role) && !u.tenant)
        return make_state_error(state_errc::invalid_argument,
                                what + ": role " + std::string(to_string(u.role)) + " needs a tenant");
    std::int64_t id = 0;
    auto r = db_->write(what, [&](detail::connection& c) -> state_result<void> {
        if (u.tenant) {
            auto t = c.prepare("SELECT 1 FROM tenants WHERE id = ?", "create user: look up tenant");
            if (!t)
                return t.error();
            t->bind(1, *u.tenant);
            auto found = t->step();
            if (!found)
                return found.error();
            if (!*found)
                return make_state_error(state_errc::constraint_violation,
                                        what + ": tenant " + *u.tenant + " does not exist");
        }
        auto s = c.prepare("INSERT INTO users (tenant, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                           "create user");
        if (!s)
            return s.error();
        s->bind(1, u.tenant).bind(2, u.name).bind(3, to_string(u.role)).bind(4, u.password_hash).bind(5, u.created_at_ms);
        if (auto done = s->run(); !done)
            return done;
        id = c.last_insert_rowid();
        return {};
    });
    if (!r) {
        if (r.error().code == state_errc::already_exists)
            return make_state_error(state_errc::already_exists, what + ": a user with that name already exists");
        return r.error();
    }
    return id;
}

state_result<std::optional<user>> user_repository::get(std::int64_t id) const {
    return get_one(*db_, "SELECT " PULSEGATE_USER_COLUMNS " FROM users WHERE id = ?", "get user",
                   [&](detail::statement& s) { s.bind(1, id); });
}

state_result<std::optional<user>> user_repository::get_by_name(std::string_view name) const {
    return get_one(*db_, "SELECT " PULSEGATE_USER_COLUMNS " FROM users WHERE name = ?", "get user by name",
                   [&](detail::statement& s) { s.bind(1, name); });
}

state_result<std::vector<user>> user_repository::list() const {
    return get_many(*db_, "SELECT " PULSEGATE_USER_COLUMNS " FROM users ORDER BY tenant IS NOT NULL, tenant, name",
                    "list users", [](detail::statement&) {});
}

state_result<std::vector<user>> user_repository::list_in_tenant(std::string_view tenant) const {
    return get_many(*db_, "SELECT " PULSEGATE_USER_COLUMNS " FROM users WHERE tenant = ? ORDER BY name",
                    "list users of a tenant", [&](detail::statement& s) { s.bind(1, tenant); });
}

state_result<std::int64_t> user_repository::count_operator_admins() const {
    std::int64_t n = 0;
    auto r = db_->read("count operator admins", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT count(*) FROM users WHERE role = 'operator_admin' AND disabled = 0",
                           "count operator admins");
        if (!s)
            return s.error();
        return s->each([&](const detail::statement& row) { n = row.int64(0); });
    });
    if (!r)
        return r.error();
    return n;
}

state_result<void> user_repository::record_login(std::int64_t id, std::int64_t at_ms) {
    return db_->write("record login", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("UPDATE users SET last_login_at = ? WHERE id = ?", "record login");
        if (!s)
            return s.error();
        s->bind(1, at_ms).bind(2, id);
        if (auto r = s->run(); !r)
            return r;
        if (c.changes() == 0)
            return make_state_error(state_errc::not_found, "record login: no user with id " + std::to_string(id));
        return {};
    });
}

state_result<void> user_repository::update(std::int64_t id, const user_update& u) {
    const std::string what = "update user " + std::to_string(id);
    if (u.password_hash && u.password_hash->empty())
        return make_state_error(state_errc::invalid_argument, what + ": the password hash is empty");
    return db_->write(what, [&](detail::connection& c) -> state_result<void> {
        if (u.disabled.value_or(false))
            if (auto ok = keep_an_operator_admin(c, id, "disable user"); !ok)
                return ok;
        auto s = c.prepare("UPDATE users SET password_hash = coalesce(?2, password_hash), "
                           "disabled = coalesce(?3, disabled) WHERE id = ?1",
                           "update user");
        if (!s)
            return s.error();
        s->bind(1, id).bind(2, u.password_hash).bind(3, u.disabled);
        if (auto r = s->run(); !r)
            return r;
        if (c.changes() == 0)
            return no_user(what, id);
        return {};
    });
}

state_result<void> user_repository::remove(std::int64_t id) {
    const std::string what = "remove user " + std::to_string(id);
    return db_->write(what, [&](detail::connection& c) -> state_result<void> {
        if (auto ok = keep_an_operator_admin(c, id, "remove user"); !ok)
            return ok;
        auto s = c.prepare("DELETE FROM users WHERE id = ?", "remove user");
        if (!s)
            return s.error();
        s->bind(1, id);
        if (auto r = s->run(); !r)
            return r;
        if (c.changes() == 0)
            return no_user(what, id);
        return {};
    });
}

} // namespace pulsegate::storage::state
