#include "storage/state/tenant_repository.hpp"

#include "storage/state/connection.hpp"

namespace pulsegate::storage::state {

namespace {

tenant tenant_from(const detail::statement& s) {
    return {s.text(0), s.text(1), s.int64(2), s.int64(3) != 0};
}

state_result<std::int64_t> count_rows(detail::connection& c, const char* sql, std::string_view operation,
                                      std::string_view id) {
    auto s = c.prepare(sql, operation);
    if (!s)
        return s.error();
    s->bind(1, id);
    std::int64_t n = 0;
    if (auto r = s->each([&](const detail::statement& row) { n = row.int64(0); }); !r)
        return r.error();
    return n;
}

state_result<tenant_contents> count_contents(detail::connection& c, std::string_view operation, std::string_view id) {
    tenant_contents out;
    auto devices = count_rows(c, "SELECT count(*) FROM devices WHERE tenant = ?", operation, id);
    if (!devices)
        return devices.error();
    auto users = count_rows(c, "SELECT count(*) FROM users WHERE tenant = ?", operation, id);
    if (!users)
        return users.error();
    auto tokens = count_rows(c, "SELECT count(*) FROM api_tokens WHERE tenant = ?", operation, id);
    if (!tokens)
        return tokens.error();
    out.devices = *devices;
    out.users = *users;
    out.api_tokens = *tokens;
    return out;
}

std::string counted(std::int64_t n, std::string_view what) {
    return std::to_string(n) + " " + std::string(what) + (n == 1 ? "" : "s");
}

} // namespace

bool valid_resource_id(std::string_view id) noexcept {
    if (id.empty() || id.size() > 63)
        return false;
    auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!lower_or_digit(id.front()))
        return false;
    for (char c : id)
        if (!lower_or_digit(c) && c != '_' && c != '-')
            return false;
    return true;
}

state_result<void> tenant_repository::create(const tenant& t) {
    if (!valid_resource_id(t.id))
        return make_state_error(state_errc::invalid_argument,
                                "create tenant: id \"" + t.id +
                                    "\" is invalid: use 1 to 63 characters a-z, 0-9, '_' and '-', "
                                    "starting with a letter or digit");
    if (t.name.empty())
        return make_state_error(state_errc::invalid_argument, "create tenant " + t.id + ": the name is empty");
    auto r = db_->write("create tenant", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("INSERT INTO tenants (id, name, created_at, disabled) VALUES (?, ?, ?, ?)",
                           "create tenant");
        if (!s)
            return s.error();
        s->bind(1, t.id).bind(2, t.name).bind(3, t.created_at_ms).bind(4, t.disabled);
        return s->run();
    });
    if (!r && r.error().code == state_errc::already_exists)
        return make_state_error(state_errc::already_exists, "create tenant: a tenant with id " + t.id + " already exists");
    return r;
}

state_result<std::optional<tenant>> tenant_repository::get(std::string_view id) const {
    std::optional<tenant> out;
    auto r = db_->read("get tenant", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT id, name, created_at, disabled FROM tenants WHERE id = ?", "get tenant");
        if (!s)
            return s.error();
        s->bind(1, id);
        auto row = s->step();
        if (!row)
            return row.error();
        if (*row)
            out = tenant_from(*s);
        return {};
    });
    if (!r)
        return r.error();
    return out;
}

state_result<std::vector<tenant>> tenant_repository::list() const {
    std::vector<tenant> out;
    auto r = db_->read("list tenants", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT id, name, created_at, disabled FROM tenants ORDER BY id", "list tenants");
        if (!s)
            return s.error();
        return s->each([&](const detail::statement& row) { out.push_back(tenant_from(row)); });
    });
    if (!r)
        return r.error();
    return out;
}

state_result<void> tenant_repository::update(std::string_view id, const tenant_update& u) {
    const std::string what = "update tenant " + std::string(id);
    if (u.name && u.name->empty())
        return make_state_error(state_errc::invalid_argument, what + ": the name is empty");
    return db_->write(what, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("UPDATE tenants SET name = coalesce(?2, name), disabled = coalesce(?3, disabled) "
                           "WHERE id = ?1",
                           "update tenant");
        if (!s)
            return s.error();
        s->bind(1, id).bind(2, u.name).bind(3, u.disabled);
        if (auto r = s->run(); !r)
            return r;
        if (c.changes() == 0)
            return make_state_error(state_errc::not_found, what + ": no such tenant");
        return {};
    });
}

state_result<tenant_contents> tenant_repository::contents(std::string_view id) const {
    tenant_contents out;
    auto r = db_->read("count tenant contents", [&](detail::connection& c) -> state_result<void> {
        auto n = count_contents(c, "count tenant contents", id);
        if (!n)
            return n.error();
        out = *n;
        return {};
    });
    if (!r)
        return r.error();
    return out;
}

state_result<void> tenant_repository::remove(std::string_view id, tenant_removal how) {
    const std::string what = "remove tenant " + std::string(id);
    return db_->write(what, [&](detail::connection& c) -> state_result<void> {
        if (how == tenant_removal::refuse_if_in_use) {
            auto n = count_contents(c, "remove tenant: count contents", id);
            if (!n)
                return n.error();
            if (n->devices > 0 || n->users > 0)
                return make_state_error(state_errc::constraint_violation,
                                        what + ": it still has " + counted(n->devices, "device") + " and " +
                                            counted(n->users, "user") + "; remove them first, or remove the "
                                                                        "tenant with everything in it");
        }
        auto s = c.prepare("DELETE FROM tenants WHERE id = ?", "remove tenant");
        if (!s)
            return s.error();
        s->bind(1, id);
        if (auto r = s->run(); !r)
            return r;
        if (c.changes() == 0)
            return make_state_error(state_errc::not_found, what + ": no such tenant");
        return {};
    });
}

} // namespace pulsegate::storage::state
