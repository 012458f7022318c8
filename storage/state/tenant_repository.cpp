#include "storage/state/tenant_repository.hpp"

#include "storage/state/connection.hpp"

namespace pulsegate::storage::state {

namespace {

tenant tenant_from(const detail::statement& s) {
    return {s.text(0), s.text(1), s.int64(2), s.int64(3) != 0};
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

} // namespace pulsegate::storage::state
