#include "storage/state/device_repository.hpp"

#include "storage/state/rows.hpp"

#include "storage/state/connection.hpp"
#include "storage/state/tenant_repository.hpp" // valid_resource_id

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>

namespace pulsegate::storage::state {

namespace {

namespace json = boost::json;

#define PULSEGATE_DEVICE_COLUMNS "tenant, id, name, labels, secret_hash, created_at, disabled, last_seen_at"

std::string labels_to_json(const device_labels& labels) {
    json::object o;
    for (const auto& [k, v] : labels)
        o[k] = v;
    return json::serialize(o);
}

// The labels column holds what labels_to_json wrote (json_valid is a CHECK);
// anything else means the file was edited by hand.
state_result<device_labels> labels_from_json(const std::string& text, std::string_view tenant, std::string_view id) {
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    const auto* o = ec ? nullptr : v.if_object();
    if (o == nullptr)
        return make_state_error(state_errc::corrupt, "read device " + std::string(tenant) + "/" + std::string(id) +
                                                         ": its labels are not a JSON object");
    device_labels out;
    for (const auto& [k, val] : *o)
        out.emplace(std::string(k), val.is_string() ? std::string(val.get_string()) : json::serialize(val));
    return out;
}

state_result<device> device_from(const detail::statement& s) {
    device d;
    d.tenant = s.text(0);
    d.id = s.text(1);
    d.name = s.text(2);
    auto labels = labels_from_json(s.text(3), d.tenant, d.id);
    if (!labels)
        return labels.error();
    d.labels = std::move(*labels);
    d.secret_hash = s.text(4);
    d.created_at_ms = s.int64(5);
    d.disabled = s.int64(6) != 0;
    d.last_seen_ms = s.optional_int64(7);
    return d;
}


// Runs a page query whose last parameter is the limit; fetches one row more
// than the page to learn whether another page follows.
state_result<device_page> read_page(const database& db, const char* sql, std::string_view operation,
                                    std::int64_t limit, bool cursor_has_tenant, auto bind) {
    device_page page;
    auto r = db.read(operation, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare(sql, operation);
        if (!s)
            return s.error();
        bind(*s, limit + 1);
        std::optional<state_error> bad;
        auto done = s->each([&](const detail::statement& row) {
            if (bad)
                return;
            auto d = device_from(row);
            if (d)
                page.items.push_back(std::move(*d));
            else
                bad = d.error();
        });
        if (bad)
            return *bad;
        return done;
    });
    if (!r)
        return r.error();
    if (static_cast<std::int64_t>(page.items.size()) > limit) {
        page.items.pop_back();
        const auto& last = page.items.back();
        page.next_cursor = cursor_has_tenant ? last.tenant + "/" + last.id : last.id;
    }
    return page;
}

state_error bad_cursor(std::string_view operation) {
    return make_state_error(state_errc::invalid_argument,
                            std::string(operation) + ": the cursor is invalid; pass the next_cursor of the previous "
                                                     "page, or none for the first page");
}

state_error no_device(std::string_view operation, std::string_view tenant, std::string_view id) {
    return make_state_error(state_errc::not_found, std::string(operation) + ": tenant " + std::string(tenant) +
                                                       " has no device " + std::string(id));
}

// An UPDATE or DELETE of one device, not_found when no row matched.
state_result<void> change_one(database& db, std::string_view operation, const char* sql, std::string_view tenant,
                              std::string_view id, auto bind) {
    return db.write(operation, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare(sql, operation);
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, id);
        bind(*s);
        if (auto r = s->run(); !r)
            return r;
        if (c.changes() == 0)
            return no_device(operation, tenant, id);
        return {};
    });
}

} // namespace

state_result<void> device_repository::create(const new_device& d) {
    const std::string what = "create device " + d.tenant + "/" + d.id;
    if (!valid_resource_id(d.tenant))
        return make_state_error(state_errc::invalid_argument, what + ": the tenant id is invalid");
    if (!valid_resource_id(d.id))
        return make_state_error(state_errc::invalid_argument,
                                what + ": the device id is invalid: use 1 to 63 characters a-z, 0-9, '_' and '-', "
                                       "starting with a letter or digit");
    if (d.secret_hash.empty())
        return make_state_error(state_errc::invalid_argument, what + ": the secret hash is empty");
    auto r = db_->write(what, [&](detail::connection& c) -> state_result<void> {
        auto t = c.prepare("SELECT 1 FROM tenants WHERE id = ?", "create device: look up tenant");
        if (!t)
            return t.error();
        t->bind(1, d.tenant);
        auto found = t->step();
        if (!found)
            return found.error();
        if (!*found)
            return make_state_error(state_errc::constraint_violation, what + ": tenant " + d.tenant + " does not exist");
        auto s = c.prepare("INSERT INTO devices (tenant, id, name, labels, secret_hash, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           "create device");
        if (!s)
            return s.error();
        s->bind(1, d.tenant).bind(2, d.id).bind(3, d.name).bind(4, labels_to_json(d.labels)).bind(5, d.secret_hash)
            .bind(6, d.created_at_ms);
        return s->run();
    });
    if (!r && r.error().code == state_errc::already_exists)
        return make_state_error(state_errc::already_exists,
                                what + ": tenant " + d.tenant + " already has a device with id " + d.id);
    return r;
}

state_result<std::optional<device>> device_repository::get(std::string_view tenant, std::string_view id) const {
    std::optional<device> out;
    auto r = db_->read("get device", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_DEVICE_COLUMNS " FROM devices WHERE tenant = ? AND id = ?", "get device");
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, id);
        auto row = s->step();
        if (!row)
            return row.error();
        if (!*row)
            return {};
        auto d = device_from(*s);
        if (!d)
            return d.error();
        out = std::move(*d);
        return {};
    });
    if (!r)
        return r.error();
    return out;
}

state_result<device_page> device_repository::list(std::string_view tenant, std::size_t limit,
                                                  std::optional<std::string_view> cursor) const {
    constexpr std::string_view operation = "list devices";
    if (cursor && !valid_resource_id(*cursor))
        return bad_cursor(operation);
    // '' sorts before every id: one statement, and the primary key still
    // serves the range. A literal, not string_view(): a null data pointer
    // would bind NULL.
    return read_page(*db_,
                     "SELECT " PULSEGATE_DEVICE_COLUMNS " FROM devices WHERE tenant = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                     operation, detail::page_limit(limit), false, [&](detail::statement& s, std::int64_t n) {
                         s.bind(1, tenant).bind(2, cursor.value_or(std::string_view(""))).bind(3, n);
                     });
}

state_result<device_page> device_repository::list_all(std::size_t limit, std::optional<std::string_view> cursor,
                                                      std::optional<std::string_view> tenant) const {
    constexpr std::string_view operation = "list devices of every tenant";
    std::string_view after_tenant = "", after_id = ""; // before every key (not string_view(): NULL)
    if (cursor) {
        const auto slash = cursor->find('/');
        if (slash == std::string_view::npos)
            return bad_cursor(operation);
        after_tenant = cursor->substr(0, slash);
        after_id = cursor->substr(slash + 1);
        if (!valid_resource_id(after_tenant) || !valid_resource_id(after_id))
            return bad_cursor(operation);
    }
    if (tenant) {
        // One tenant: a range of ids within it, so the primary key serves
        // (tenant = ? AND id > ?) rather than scanning the tenant from its
        // first device on every page.
        if (after_tenant > *tenant)
            return device_page{};
        if (after_tenant < *tenant)
            after_id = "";
        return read_page(*db_,
                         "SELECT " PULSEGATE_DEVICE_COLUMNS
                         " FROM devices WHERE tenant = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                         operation, detail::page_limit(limit), true, [&](detail::statement& s, std::int64_t n) {
                             s.bind(1, *tenant).bind(2, after_id).bind(3, n);
                         });
    }
    return read_page(*db_,
                     "SELECT " PULSEGATE_DEVICE_COLUMNS
                     " FROM devices WHERE (tenant, id) > (?1, ?2) ORDER BY tenant, id LIMIT ?3",
                     operation, detail::page_limit(limit), true, [&](detail::statement& s, std::int64_t n) {
                         s.bind(1, after_tenant).bind(2, after_id).bind(3, n);
                     });
}

state_result<void> device_repository::update(std::string_view tenant, std::string_view id, const device_update& u) {
    std::optional<std::string> labels;
    if (u.labels)
        labels = labels_to_json(*u.labels);
    return change_one(*db_, "update device",
                      "UPDATE devices SET name = coalesce(?3, name), labels = coalesce(?4, labels) "
                      "WHERE tenant = ?1 AND id = ?2",
                      tenant, id, [&](detail::statement& s) { s.bind(3, u.name).bind(4, labels); });
}

state_result<void> device_repository::set_secret_hash(std::string_view tenant, std::string_view id,
                                                      std::string_view secret_hash) {
    if (secret_hash.empty())
        return make_state_error(state_errc::invalid_argument, "set device secret: the secret hash is empty");
    return change_one(*db_, "set device secret", "UPDATE devices SET secret_hash = ?3 WHERE tenant = ?1 AND id = ?2",
                      tenant, id, [&](detail::statement& s) { s.bind(3, secret_hash); });
}

state_result<void> device_repository::set_disabled(std::string_view tenant, std::string_view id, bool disabled) {
    return change_one(*db_, disabled ? "disable device" : "enable device",
                      "UPDATE devices SET disabled = ?3 WHERE tenant = ?1 AND id = ?2", tenant, id,
                      [&](detail::statement& s) { s.bind(3, disabled); });
}

state_result<void> device_repository::remove(std::string_view tenant, std::string_view id) {
    return change_one(*db_, "remove device", "DELETE FROM devices WHERE tenant = ?1 AND id = ?2", tenant, id,
                      [](detail::statement&) {});
}

state_result<std::int64_t> device_repository::touch_last_seen(std::span<const device_seen> seen) {
    std::int64_t changed = 0;
    if (seen.empty())
        return changed;
    auto r = db_->write("record devices last seen", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("UPDATE devices SET last_seen_at = ?3 WHERE tenant = ?1 AND id = ?2 "
                           "AND (last_seen_at IS NULL OR last_seen_at < ?3)",
                           "record devices last seen");
        if (!s)
            return s.error();
        for (const auto& d : seen) {
            s->bind(1, d.tenant).bind(2, d.id).bind(3, d.at_ms);
            if (auto done = s->run(); !done)
                return done;
            changed += c.changes();
        }
        return {};
    });
    if (!r)
        return r.error();
    return changed;
}

} // namespace pulsegate::storage::state
