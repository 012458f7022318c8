#include "storage/state/rule_repository.hpp"

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

#define PULSEGATE_RULE_COLUMNS                                                                                     \
    "id, tenant, name, description, kind, enabled, severity, scope, metric, op, value, for_s, clear_value, "      \
    "interval_s, missed, escalate_after_s, created_at, updated_at"

// {} | {"device": id} | {"labels": {...}} (both members if both are set).
std::string scope_to_json(const rule_scope& scope) {
    json::object o;
    if (scope.device)
        o["device"] = *scope.device;
    if (!scope.labels.empty()) {
        json::object labels;
        for (const auto& [k, v] : scope.labels)
            labels[k] = v;
        o["labels"] = std::move(labels);
    }
    return json::serialize(o);
}

// The scope column holds what scope_to_json wrote; anything else means the
// file was edited by hand.
std::optional<rule_scope> scope_from_json(const std::string& text) {
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    const auto* o = ec ? nullptr : v.if_object();
    if (o == nullptr)
        return std::nullopt;
    rule_scope scope;
    if (const auto* d = o->if_contains("device")) {
        if (!d->is_string())
            return std::nullopt;
        scope.device = std::string(d->get_string());
    }
    if (const auto* l = o->if_contains("labels")) {
        const auto* labels = l->if_object();
        if (labels == nullptr)
            return std::nullopt;
        for (const auto& [k, val] : *labels) {
            if (!val.is_string())
                return std::nullopt;
            scope.labels.emplace(std::string(k), std::string(val.get_string()));
        }
    }
    return scope;
}

state_result<rule_record> rule_from(const detail::statement& s) {
    rule_record r;
    r.id = s.int64(0);
    r.tenant = s.text(1);
    r.name = s.text(2);
    r.description = s.text(3);
    const auto kind = parse_rule_kind(s.text(4));
    const auto sev = parse_severity(s.text(6));
    const auto scope = scope_from_json(s.text(7));
    // op is written for every rule; NULL only in rows written by hand.
    const auto op = s.is_null(9) ? std::optional(compare_op::gt) : parse_compare_op(s.text(9));
    if (!kind || !sev || !scope || !op)
        return make_state_error(state_errc::corrupt, "read rule " + std::to_string(r.id) + " of tenant " + r.tenant +
                                                         ": its kind, severity, operator or scope is not one "
                                                         "pulsegate writes; restore a backup");
    r.kind = *kind;
    r.enabled = s.int64(5) != 0;
    r.sev = *sev;
    r.scope = *scope;
    r.metric = s.text(8); // NULL reads as ""
    r.op = *op;
    r.value = s.is_null(10) ? 0.0 : s.real(10);
    r.for_s = s.int64(11);
    r.clear_value = s.optional_real(12);
    r.interval_s = s.is_null(13) ? 0 : s.int64(13);
    r.missed = s.is_null(14) ? 0 : s.int64(14);
    r.escalate_after_s = s.optional_int64(15);
    r.created_at_ms = s.int64(16);
    r.updated_at_ms = s.int64(17);
    return r;
}

state_error no_rule(std::string_view operation, std::string_view tenant, std::int64_t id) {
    return make_state_error(state_errc::not_found, std::string(operation) + ": tenant " + std::string(tenant) +
                                                       " has no rule " + std::to_string(id));
}

// Binds the fields create() and replace() write, from ?3 on.
void bind_fields(detail::statement& s, const rule_record& r) {
    s.bind(3, r.name)
        .bind(4, r.description)
        .bind(5, to_string(r.kind))
        .bind(6, r.enabled)
        .bind(7, to_string(r.sev))
        .bind(8, scope_to_json(r.scope))
        .bind(9, r.metric.empty() ? std::nullopt : std::optional<std::string_view>(r.metric))
        .bind(10, to_string(r.op))
        .bind(11, r.value)
        .bind(12, r.for_s)
        .bind(13, r.clear_value)
        .bind(14, r.interval_s)
        .bind(15, r.missed)
        .bind(16, r.escalate_after_s)
        .bind(17, r.updated_at_ms);
}

} // namespace

state_result<std::int64_t> rule_repository::create(const rule_record& r) {
    const std::string what = "create rule " + r.name + " of tenant " + r.tenant;
    std::int64_t id = 0;
    auto done = db_->write(what, [&](detail::connection& c) -> state_result<void> {
        auto t = c.prepare("SELECT 1 FROM tenants WHERE id = ?", "create rule: look up tenant");
        if (!t)
            return t.error();
        t->bind(1, r.tenant);
        auto found = t->step();
        if (!found)
            return found.error();
        if (!*found)
            return make_state_error(state_errc::constraint_violation, what + ": tenant " + r.tenant + " does not exist");
        auto s = c.prepare("INSERT INTO rules (tenant, created_at, name, description, kind, enabled, severity, scope, "
                           "metric, op, value, for_s, clear_value, interval_s, missed, escalate_after_s, updated_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                           "create rule");
        if (!s)
            return s.error();
        s->bind(1, r.tenant).bind(2, r.created_at_ms);
        bind_fields(*s, r);
        if (auto ran = s->run(); !ran)
            return ran;
        id = c.last_insert_rowid();
        return {};
    });
    if (!done)
        return done.error();
    return id;
}

state_result<std::optional<rule_record>> rule_repository::get(std::string_view tenant, std::int64_t id) const {
    std::vector<rule_record> found;
    auto r = db_->read("get rule", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_RULE_COLUMNS " FROM rules WHERE tenant = ? AND id = ?", "get rule");
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, id);
        return detail::collect(*s, found, rule_from);
    });
    if (!r)
        return r.error();
    if (found.empty())
        return std::optional<rule_record>();
    return std::optional(std::move(found.front()));
}

state_result<rule_page> rule_repository::list(std::string_view tenant, std::size_t limit,
                                              std::optional<std::string_view> cursor) const {
    constexpr std::string_view operation = "list rules";
    const auto cursor_id = detail::id_cursor(cursor, operation);
    if (!cursor_id)
        return cursor_id.error();
    const std::int64_t after = cursor_id->value_or(0);
    const auto n = detail::page_limit(limit);
    rule_page page;
    auto r = db_->read(operation, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_RULE_COLUMNS " FROM rules WHERE tenant = ?1 AND id > ?2 "
                           "ORDER BY id LIMIT ?3",
                           operation);
        if (!s)
            return s.error();
        // One row more than the page tells whether another page follows.
        s->bind(1, tenant).bind(2, after).bind(3, n + 1);
        return detail::collect(*s, page.items, rule_from);
    });
    if (!r)
        return r.error();
    if (static_cast<std::int64_t>(page.items.size()) > n) {
        page.items.pop_back();
        page.next_cursor = std::to_string(page.items.back().id);
    }
    return page;
}

state_result<std::vector<rule_record>> rule_repository::list_all() const {
    std::vector<rule_record> out;
    auto r = db_->read("list rules of every tenant", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_RULE_COLUMNS " FROM rules ORDER BY id", "list rules of every tenant");
        if (!s)
            return s.error();
        return detail::collect(*s, out, rule_from);
    });
    if (!r)
        return r.error();
    return out;
}

state_result<std::vector<rule_record>> rule_repository::list_tenant(std::string_view tenant) const {
    std::vector<rule_record> out;
    auto r = db_->read("list every rule of a tenant", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_RULE_COLUMNS " FROM rules WHERE tenant = ? ORDER BY id",
                           "list every rule of a tenant");
        if (!s)
            return s.error();
        s->bind(1, tenant);
        return detail::collect(*s, out, rule_from);
    });
    if (!r)
        return r.error();
    return out;
}

state_result<void> rule_repository::replace(const rule_record& r) {
    constexpr std::string_view operation = "replace rule";
    return db_->write(operation, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("UPDATE rules SET name = ?3, description = ?4, kind = ?5, enabled = ?6, severity = ?7, "
                           "scope = ?8, metric = ?9, op = ?10, value = ?11, for_s = ?12, clear_value = ?13, "
                           "interval_s = ?14, missed = ?15, escalate_after_s = ?16, updated_at = ?17 "
                           "WHERE tenant = ?1 AND id = ?2",
                           operation);
        if (!s)
            return s.error();
        s->bind(1, r.tenant).bind(2, r.id);
        bind_fields(*s, r);
        if (auto ran = s->run(); !ran)
            return ran;
        if (c.changes() == 0)
            return no_rule(operation, r.tenant, r.id);
        return {};
    });
}

state_result<void> rule_repository::remove(std::string_view tenant, std::int64_t id) {
    constexpr std::string_view operation = "remove rule";
    return db_->write(operation, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("DELETE FROM rules WHERE tenant = ?1 AND id = ?2", operation);
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, id);
        if (auto ran = s->run(); !ran)
            return ran;
        if (c.changes() == 0)
            return no_rule(operation, tenant, id);
        return {};
    });
}

} // namespace pulsegate::storage::state
