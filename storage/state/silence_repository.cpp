#include "storage/state/silence_repository.hpp"

#include "storage/state/connection.hpp"
#include "storage/state/rows.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <charconv>

namespace pulsegate::storage::state {

namespace {

namespace json = boost::json;

#define PULSEGATE_SILENCE_COLUMNS "id, tenant, matchers, comment, created_by, starts_at, ends_at, created_at"

// {"device", "labels", "rule", "kind", "severity"}; an absent member (or
// empty labels) is no matcher.
std::string matchers_to_json(const silence_matchers& m) {
    json::object o;
    if (m.device)
        o["device"] = *m.device;
    if (!m.labels.empty()) {
        json::object labels;
        for (const auto& [k, v] : m.labels)
            labels[k] = v;
        o["labels"] = std::move(labels);
    }
    if (m.rule)
        o["rule"] = *m.rule;
    if (m.kind)
        o["kind"] = to_string(*m.kind);
    if (m.sev)
        o["severity"] = to_string(*m.sev);
    return json::serialize(o);
}

// The matchers column holds what matchers_to_json wrote; anything else
// means the file was edited by hand.
std::optional<silence_matchers> matchers_from_json(const std::string& text) {
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    const auto* o = ec ? nullptr : v.if_object();
    if (o == nullptr)
        return std::nullopt;
    silence_matchers m;
    auto text_of = [&](const char* key) -> std::optional<std::optional<std::string_view>> {
        const auto* member = o->if_contains(key);
        if (member == nullptr)
            return std::optional<std::string_view>();
        if (!member->is_string())
            return std::nullopt; // present but not a string
        return std::optional<std::string_view>(member->get_string());
    };
    auto device = text_of("device");
    auto kind = text_of("kind");
    auto sev = text_of("severity");
    if (!device || !kind || !sev)
        return std::nullopt;
    if (*device)
        m.device = std::string(**device);
    if (*kind) {
        m.kind = parse_alert_kind(**kind);
        if (!m.kind)
            return std::nullopt;
    }
    if (*sev) {
        m.sev = parse_severity(**sev);
        if (!m.sev)
            return std::nullopt;
    }
    if (const auto* rule = o->if_contains("rule")) {
        if (!rule->is_int64())
            return std::nullopt;
        m.rule = rule->get_int64();
    }
    if (const auto* l = o->if_contains("labels")) {
        const auto* labels = l->if_object();
        if (labels == nullptr)
            return std::nullopt;
        for (const auto& [k, val] : *labels) {
            if (!val.is_string())
                return std::nullopt;
            m.labels.emplace(std::string(k), std::string(val.get_string()));
        }
    }
    return m;
}

state_result<silence_record> silence_from(const detail::statement& s) {
    silence_record r;
    r.id = s.int64(0);
    r.tenant = s.text(1);
    auto matchers = matchers_from_json(s.text(2));
    if (!matchers)
        return make_state_error(state_errc::corrupt, "read silence " + std::to_string(r.id) + " of tenant " + r.tenant +
                                                         ": its matchers are not what pulsegate writes; restore a "
                                                         "backup or remove the silence");
    r.matchers = std::move(*matchers);
    r.comment = s.text(3);
    r.created_by = s.text(4);
    r.starts_at_ms = s.int64(5);
    r.ends_at_ms = s.int64(6);
    r.created_at_ms = s.int64(7);
    return r;
}

} // namespace

state_result<std::int64_t> silence_repository::create(const silence_record& s) {
    const std::string what = "create silence for tenant " + s.tenant;
    if (s.ends_at_ms <= s.starts_at_ms)
        return make_state_error(state_errc::invalid_argument,
                                what + ": it ends before it starts; give an end time after the start time");
    std::int64_t id = 0;
    auto r = db_->write(what, [&](detail::connection& c) -> state_result<void> {
        auto t = c.prepare("SELECT 1 FROM tenants WHERE id = ?", "create silence: look up tenant");
        if (!t)
            return t.error();
        t->bind(1, s.tenant);
        auto found = t->step();
        if (!found)
            return found.error();
        if (!*found)
            return make_state_error(state_errc::constraint_violation, what + ": tenant " + s.tenant + " does not exist");
        auto ins = c.prepare("INSERT INTO silences (tenant, matchers, comment, created_by, starts_at, ends_at, "
                             "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             "create silence");
        if (!ins)
            return ins.error();
        ins->bind(1, s.tenant)
            .bind(2, matchers_to_json(s.matchers))
            .bind(3, s.comment)
            .bind(4, s.created_by)
            .bind(5, s.starts_at_ms)
            .bind(6, s.ends_at_ms)
            .bind(7, s.created_at_ms);
        if (auto ran = ins->run(); !ran)
            return ran;
        id = c.last_insert_rowid();
        return {};
    });
    if (!r)
        return r.error();
    return id;
}

state_result<std::optional<silence_record>> silence_repository::get(std::string_view tenant, std::int64_t id) const {
    std::vector<silence_record> found;
    auto r = db_->read("get silence", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_SILENCE_COLUMNS " FROM silences WHERE tenant = ? AND id = ?",
                           "get silence");
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, id);
        return detail::collect(*s, found, silence_from);
    });
    if (!r)
        return r.error();
    if (found.empty())
        return std::optional<silence_record>();
    return std::optional(std::move(found.front()));
}

state_result<silence_page> silence_repository::list(std::string_view tenant, std::optional<std::int64_t> active_at,
                                                    std::size_t limit, std::optional<std::string_view> cursor) const {
    constexpr std::string_view operation = "list silences";
    const auto cursor_id = detail::id_cursor(cursor, operation);
    if (!cursor_id)
        return cursor_id.error();
    const std::int64_t after = cursor_id->value_or(0);
    const auto n = detail::page_limit(limit);
    silence_page page;
    auto r = db_->read(operation, [&](detail::connection& c) -> state_result<void> {
        // A window is [starts_at, ends_at).
        auto s = c.prepare("SELECT " PULSEGATE_SILENCE_COLUMNS " FROM silences WHERE tenant = ?1 AND id > ?2 "
                           "AND (?3 IS NULL OR (starts_at <= ?3 AND ends_at > ?3)) ORDER BY id LIMIT ?4",
                           operation);
        if (!s)
            return s.error();
        // One row more than the page tells whether another page follows.
        s->bind(1, tenant).bind(2, after).bind(3, active_at).bind(4, n + 1);
        return detail::collect(*s, page.items, silence_from);
    });
    if (!r)
        return r.error();
    if (static_cast<std::int64_t>(page.items.size()) > n) {
        page.items.pop_back();
        page.next_cursor = std::to_string(page.items.back().id);
    }
    return page;
}

state_result<std::vector<silence_record>> silence_repository::not_ended(std::int64_t now_ms) const {
    std::vector<silence_record> out;
    auto r = db_->read("list silences not ended", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_SILENCE_COLUMNS " FROM silences WHERE ends_at > ? ORDER BY id",
                           "list silences not ended");
        if (!s)
            return s.error();
        s->bind(1, now_ms);
        return detail::collect(*s, out, silence_from);
    });
    if (!r)
        return r.error();
    return out;
}

state_result<void> silence_repository::remove(std::string_view tenant, std::int64_t id) {
    constexpr std::string_view operation = "remove silence";
    return db_->write(operation, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("DELETE FROM silences WHERE tenant = ?1 AND id = ?2", operation);
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, id);
        if (auto ran = s->run(); !ran)
            return ran;
        if (c.changes() == 0)
            return make_state_error(state_errc::not_found, std::string(operation) + ": tenant " + std::string(tenant) +
                                                               " has no silence " + std::to_string(id));
        return {};
    });
}

state_result<std::int64_t> silence_repository::purge_ended_before(std::int64_t before_ms) {
    std::int64_t removed = 0;
    auto r = db_->write("purge ended silences", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("DELETE FROM silences WHERE ends_at < ?", "purge ended silences");
        if (!s)
            return s.error();
        s->bind(1, before_ms);
        if (auto ran = s->run(); !ran)
            return ran;
        removed = c.changes();
        return {};
    });
    if (!r)
        return r.error();
    return removed;
}

// ---------------------------------------------------------------- liveness ---

state_result<void> liveness_repository::save(std::span<const liveness_record> seen) {
    if (seen.empty())
        return {};
    return db_->write("save device liveness", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("INSERT INTO device_liveness (tenant, device, last_message_at) VALUES (?1, ?2, ?3) "
                           "ON CONFLICT (tenant, device) DO UPDATE SET last_message_at = excluded.last_message_at "
                           "WHERE excluded.last_message_at > last_message_at",
                           "save device liveness");
        if (!s)
            return s.error();
        for (const auto& l : seen) {
            s->bind(1, l.tenant).bind(2, l.device).bind(3, l.last_message_ms);
            if (auto ran = s->run(); !ran)
                return ran;
        }
        return {};
    });
}

state_result<std::vector<liveness_record>> liveness_repository::load_all() const {
    std::vector<liveness_record> out;
    auto r = db_->read("load device liveness", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT tenant, device, last_message_at FROM device_liveness ORDER BY tenant, device",
                           "load device liveness");
        if (!s)
            return s.error();
        return s->each([&](const detail::statement& row) {
            out.push_back({row.text(0), row.text(1), row.int64(2)});
        });
    });
    if (!r)
        return r.error();
    return out;
}

state_result<void> liveness_repository::forget(std::string_view tenant, std::string_view device) {
    return db_->write("forget device liveness", [&](detail::connection& c) -> state_result<void> {
        // An empty device forgets the whole tenant.
        auto s = c.prepare("DELETE FROM device_liveness WHERE tenant = ?1 AND (?2 = '' OR device = ?2)",
                           "forget device liveness");
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, device);
        return s->run();
    });
}

} // namespace pulsegate::storage::state
