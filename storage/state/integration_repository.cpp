#include "storage/state/integration_repository.hpp"

#include "storage/state/connection.hpp"
#include "storage/state/rows.hpp"

#include <algorithm>

namespace pulsegate::storage::state {

namespace {

#define PULSEGATE_INTEGRATION_COLUMNS "id, tenant, name, type, config, secrets, enabled, created_at, updated_at"
#define PULSEGATE_ROUTE_COLUMNS "id, tenant, name, match, repeat_s, continue_matching, enabled, created_at, updated_at"

state_result<void> tenant_exists(detail::connection& c, std::string_view tenant, const std::string& what) {
    auto t = c.prepare("SELECT 1 FROM tenants WHERE id = ?", "look up tenant");
    if (!t)
        return t.error();
    t->bind(1, tenant);
    auto found = t->step();
    if (!found)
        return found.error();
    if (!*found)
        return make_state_error(state_errc::constraint_violation, what + ": tenant " + std::string(tenant) +
                                                                      " does not exist");
    return {};
}

// already_exists from the UNIQUE (tenant, name) key, said in words.
state_error name_taken(const state_error& e, const std::string& what, std::string_view kind, std::string_view name) {
    if (e.code == state_errc::already_exists)
        return make_state_error(state_errc::already_exists, what + ": the tenant already has " + std::string(kind) +
                                                                " named \"" + std::string(name) +
                                                                "\"; choose another name");
    return e;
}

} // namespace

// ---- integrations -----------------------------------------------------------

state_result<std::int64_t> integration_repository::create(const integration_record& r) {
    const std::string what = "create integration for tenant " + r.tenant;
    std::int64_t id = 0;
    auto w = db_->write(what, [&](detail::connection& c) -> state_result<void> {
        if (auto ok = tenant_exists(c, r.tenant, what); !ok)
            return ok;
        auto s = c.prepare("INSERT INTO integrations (tenant, name, type, config, secrets, enabled, created_at, "
                           "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           "create integration");
        if (!s)
            return s.error();
        s->bind(1, r.tenant).bind(2, r.name).bind(3, r.type).bind(4, r.config);
        s->bind_blob(5, box_->seal(r.secrets)).bind(6, r.enabled ? 1 : 0).bind(7, r.created_at_ms).bind(8, r.updated_at_ms);
        if (auto ran = s->run(); !ran)
            return name_taken(ran.error(), what, "an integration", r.name);
        id = c.last_insert_rowid();
        return {};
    });
    if (!w)
        return w.error();
    return id;
}

state_result<void> integration_repository::update(const integration_record& r) {
    const std::string what = "update integration " + std::to_string(r.id) + " of tenant " + r.tenant;
    return db_->write(what, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("UPDATE integrations SET name = ?3, config = ?4, secrets = ?5, enabled = ?6, "
                           "updated_at = ?7 WHERE tenant = ?1 AND id = ?2",
                           "update integration");
        if (!s)
            return s.error();
        s->bind(1, r.tenant).bind(2, r.id).bind(3, r.name).bind(4, r.config);
        s->bind_blob(5, box_->seal(r.secrets)).bind(6, r.enabled ? 1 : 0).bind(7, r.updated_at_ms);
        if (auto ran = s->run(); !ran)
            return name_taken(ran.error(), what, "an integration", r.name);
        if (c.changes() == 0)
            return make_state_error(state_errc::not_found, what + ": no such integration");
        return {};
    });
}

state_result<void> integration_repository::remove(std::string_view tenant, std::int64_t id) {
    const std::string what = "remove integration " + std::to_string(id) + " of tenant " + std::string(tenant);
    return db_->write(what, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("DELETE FROM integrations WHERE tenant = ?1 AND id = ?2", "remove integration");
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, id);
        if (auto ran = s->run(); !ran)
            return ran;
        if (c.changes() == 0)
            return make_state_error(state_errc::not_found, what + ": no such integration");
        return {};
    });
}

namespace {

state_result<integration_record> integration_from(const detail::statement& s, const secret_box& box) {
    integration_record r;
    r.id = s.int64(0);
    r.tenant = s.text(1);
    r.name = s.text(2);
    r.type = s.text(3);
    r.config = s.text(4);
    if (!s.is_null(5)) {
        auto plain = box.open(s.blob(5));
        if (!plain)
            return make_state_error(plain.error().code, "read integration " + std::to_string(r.id) + " of tenant " +
                                                            r.tenant + ": " + plain.error().message);
        r.secrets = std::move(*plain);
    }
    if (r.secrets.empty())
        r.secrets = "{}";
    r.enabled = s.int64(6) != 0;
    r.created_at_ms = s.int64(7);
    r.updated_at_ms = s.int64(8);
    return r;
}

} // namespace

state_result<std::optional<integration_record>> integration_repository::get(std::string_view tenant,
                                                                             std::int64_t id) const {
    std::vector<integration_record> found;
    auto r = db_->read("get integration", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_INTEGRATION_COLUMNS " FROM integrations WHERE tenant = ? AND id = ?",
                           "get integration");
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, id);
        return detail::collect(*s, found, [&](const detail::statement& row) { return integration_from(row, *box_); });
    });
    if (!r)
        return r.error();
    if (found.empty())
        return std::optional<integration_record>();
    return std::optional(std::move(found.front()));
}

state_result<std::optional<integration_record>> integration_repository::get_by_id(std::int64_t id) const {
    std::vector<integration_record> found;
    auto r = db_->read("get integration", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_INTEGRATION_COLUMNS " FROM integrations WHERE id = ?",
                           "get integration by id");
        if (!s)
            return s.error();
        s->bind(1, id);
        return detail::collect(*s, found, [&](const detail::statement& row) { return integration_from(row, *box_); });
    });
    if (!r)
        return r.error();
    if (found.empty())
        return std::optional<integration_record>();
    return std::optional(std::move(found.front()));
}

state_result<integration_page> integration_repository::list(std::string_view tenant, std::size_t limit,
                                                            std::optional<std::string_view> cursor) const {
    constexpr std::string_view operation = "list integrations";
    const auto after = detail::id_cursor(cursor, operation);
    if (!after)
        return after.error();
    const auto n = detail::page_limit(limit);
    integration_page page;
    auto r = db_->read(operation, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_INTEGRATION_COLUMNS
                           " FROM integrations WHERE tenant = ? AND id > ? ORDER BY id LIMIT ?",
                           operation);
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, after->value_or(0)).bind(3, n + 1);
        return detail::collect(*s, page.items, [&](const detail::statement& row) { return integration_from(row, *box_); });
    });
    if (!r)
        return r.error();
    if (static_cast<std::int64_t>(page.items.size()) > n) {
        page.items.pop_back();
        page.next_cursor = std::to_string(page.items.back().id);
    }
    return page;
}

state_result<std::vector<std::int64_t>> integration_repository::existing(std::string_view tenant,
                                                                         const std::vector<std::int64_t>& ids) const {
    std::vector<std::int64_t> out;
    auto r = db_->read("look up integrations", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT 1 FROM integrations WHERE tenant = ? AND id = ?", "look up integration");
        if (!s)
            return s.error();
        for (auto id : ids) {
            s->bind(1, tenant).bind(2, id);
            auto row = s->step();
            if (!row)
                return row.error();
            if (*row)
                out.push_back(id);
            if (auto done = s->run(); !done)
                return done;
        }
        return {};
    });
    if (!r)
        return r.error();
    return out;
}

// ---- routes -------------------------------------------------------------------

namespace {

state_result<void> check_targets(detail::connection& c, const route_record& r, const std::string& what) {
    auto s = c.prepare("SELECT 1 FROM integrations WHERE tenant = ? AND id = ?", "route: look up integration");
    if (!s)
        return s.error();
    for (auto id : r.integrations) {
        s->bind(1, r.tenant).bind(2, id);
        auto row = s->step();
        if (!row)
            return row.error();
        const bool found = *row;
        if (auto done = s->run(); !done)
            return done;
        if (!found)
            return make_state_error(state_errc::constraint_violation,
                                    what + ": the tenant has no integration " + std::to_string(id));
    }
    return {};
}

state_result<void> write_targets(detail::connection& c, const route_record& r, std::int64_t id) {
    auto del = c.prepare("DELETE FROM route_integrations WHERE route = ?", "route: clear integrations");
    if (!del)
        return del.error();
    del->bind(1, id);
    if (auto ran = del->run(); !ran)
        return ran;
    auto ins = c.prepare("INSERT OR IGNORE INTO route_integrations (route, integration) VALUES (?, ?)",
                         "route: add integration");
    if (!ins)
        return ins.error();
    for (auto target : r.integrations) {
        ins->bind(1, id).bind(2, target);
        if (auto ran = ins->run(); !ran)
            return ran;
    }
    return {};
}

route_record route_from(const detail::statement& s) {
    route_record r;
    r.id = s.int64(0);
    r.tenant = s.text(1);
    r.name = s.text(2);
    r.match = s.text(3);
    r.repeat_s = s.int64(4);
    r.continue_matching = s.int64(5) != 0;
    r.enabled = s.int64(6) != 0;
    r.created_at_ms = s.int64(7);
    r.updated_at_ms = s.int64(8);
    return r;
}

// Reads the routes `sql` selects, with their integrations.
state_result<std::vector<route_record>> read_routes(detail::connection& c, detail::statement& s) {
    std::vector<route_record> out;
    if (auto r = s.each([&](const detail::statement& row) { out.push_back(route_from(row)); }); !r)
        return r.error();
    for (auto& r : out) {
        // Borrowed per route: each() leaves the statement done, and only a
        // reset (on return to the cache) lets it be bound again.
        auto t = c.prepare("SELECT integration FROM route_integrations WHERE route = ? ORDER BY integration",
                           "route: read integrations");
        if (!t)
            return t.error();
        t->bind(1, r.id);
        if (auto each = t->each([&](const detail::statement& row) { r.integrations.push_back(row.int64(0)); }); !each)
            return each.error();
    }
    return out;
}

} // namespace

state_result<std::int64_t> integration_repository::create_route(const route_record& r) {
    const std::string what = "create route for tenant " + r.tenant;
    std::int64_t id = 0;
    auto w = db_->write(what, [&](detail::connection& c) -> state_result<void> {
        if (auto ok = tenant_exists(c, r.tenant, what); !ok)
            return ok;
        if (auto ok = check_targets(c, r, what); !ok)
            return ok;
        auto s = c.prepare("INSERT INTO routes (tenant, name, match, repeat_s, continue_matching, enabled, "
                           "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           "create route");
        if (!s)
            return s.error();
        s->bind(1, r.tenant).bind(2, r.name).bind(3, r.match).bind(4, r.repeat_s).bind(5, r.continue_matching ? 1 : 0);
        s->bind(6, r.enabled ? 1 : 0).bind(7, r.created_at_ms).bind(8, r.updated_at_ms);
        if (auto ran = s->run(); !ran)
            return ran;
        id = c.last_insert_rowid();
        return write_targets(c, r, id);
    });
    if (!w)
        return w.error();
    return id;
}

state_result<void> integration_repository::update_route(const route_record& r) {
    const std::string what = "update route " + std::to_string(r.id) + " of tenant " + r.tenant;
    return db_->write(what, [&](detail::connection& c) -> state_result<void> {
        if (auto ok = check_targets(c, r, what); !ok)
            return ok;
        auto s = c.prepare("UPDATE routes SET name = ?3, match = ?4, repeat_s = ?5, continue_matching = ?6, "
                           "enabled = ?7, updated_at = ?8 WHERE tenant = ?1 AND id = ?2",
                           "update route");
        if (!s)
            return s.error();
        s->bind(1, r.tenant).bind(2, r.id).bind(3, r.name).bind(4, r.match).bind(5, r.repeat_s);
        s->bind(6, r.continue_matching ? 1 : 0).bind(7, r.enabled ? 1 : 0).bind(8, r.updated_at_ms);
        if (auto ran = s->run(); !ran)
            return ran;
        if (c.changes() == 0)
            return make_state_error(state_errc::not_found, what + ": no such route");
        return write_targets(c, r, r.id);
    });
}

state_result<void> integration_repository::remove_route(std::string_view tenant, std::int64_t id) {
    const std::string what = "remove route " + std::to_string(id) + " of tenant " + std::string(tenant);
    return db_->write(what, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("DELETE FROM routes WHERE tenant = ?1 AND id = ?2", "remove route");
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, id);
        if (auto ran = s->run(); !ran)
            return ran;
        if (c.changes() == 0)
            return make_state_error(state_errc::not_found, what + ": no such route");
        return {};
    });
}

state_result<std::optional<route_record>> integration_repository::get_route(std::string_view tenant,
                                                                           std::int64_t id) const {
    std::vector<route_record> found;
    auto r = db_->read("get route", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_ROUTE_COLUMNS " FROM routes WHERE tenant = ? AND id = ?", "get route");
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, id);
        auto got = read_routes(c, *s);
        if (!got)
            return got.error();
        found = std::move(*got);
        return {};
    });
    if (!r)
        return r.error();
    if (found.empty())
        return std::optional<route_record>();
    return std::optional(std::move(found.front()));
}

state_result<route_page> integration_repository::list_routes(std::string_view tenant, std::size_t limit,
                                                             std::optional<std::string_view> cursor) const {
    constexpr std::string_view operation = "list routes";
    const auto after = detail::id_cursor(cursor, operation);
    if (!after)
        return after.error();
    const auto n = detail::page_limit(limit);
    route_page page;
    auto r = db_->read(operation, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_ROUTE_COLUMNS " FROM routes WHERE tenant = ? AND id > ? ORDER BY id "
                           "LIMIT ?",
                           operation);
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, after->value_or(0)).bind(3, n + 1);
        auto got = read_routes(c, *s);
        if (!got)
            return got.error();
        page.items = std::move(*got);
        return {};
    });
    if (!r)
        return r.error();
    if (static_cast<std::int64_t>(page.items.size()) > n) {
        page.items.pop_back();
        page.next_cursor = std::to_string(page.items.back().id);
    }
    return page;
}

state_result<std::vector<route_record>> integration_repository::all_routes() const {
    std::vector<route_record> out;
    auto r = db_->read("read all routes", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_ROUTE_COLUMNS " FROM routes ORDER BY id", "read all routes");
        if (!s)
            return s.error();
        auto got = read_routes(c, *s);
        if (!got)
            return got.error();
        out = std::move(*got);
        return {};
    });
    if (!r)
        return r.error();
    return out;
}

state_result<std::vector<integration_repository::brief>> integration_repository::all_briefs() const {
    std::vector<brief> out;
    auto r = db_->read("read all integrations", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT id, tenant, type, enabled FROM integrations ORDER BY id", "read all integrations");
        if (!s)
            return s.error();
        return s->each([&](const detail::statement& row) {
            out.push_back({row.int64(0), row.text(1), row.text(2), row.int64(3) != 0});
        });
    });
    if (!r)
        return r.error();
    return out;
}

} // namespace pulsegate::storage::state
