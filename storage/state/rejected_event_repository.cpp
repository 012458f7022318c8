#include "storage/state/rejected_event_repository.hpp"

#include "storage/state/connection.hpp"

#include <algorithm>

namespace pulsegate::storage::state {

namespace {

state_result<std::int64_t> prune_in(detail::connection& c, const rejected_event_limits& limits, std::int64_t now_ms) {
    std::int64_t removed = 0;
    auto by_age = c.prepare("DELETE FROM rejected_events WHERE at < ?", "prune rejected events");
    if (!by_age)
        return by_age.error();
    by_age->bind(1, now_ms - limits.max_age_ms);
    if (auto r = by_age->run(); !r)
        return r.error();
    removed += c.changes();
    // Ids grow with time: everything at or below the (max_rows+1)-th newest
    // id goes, in one range delete on the rowid.
    auto by_count = c.prepare("DELETE FROM rejected_events WHERE id <= "
                              "(SELECT id FROM rejected_events ORDER BY id DESC LIMIT 1 OFFSET ?)",
                              "prune rejected events");
    if (!by_count)
        return by_count.error();
    by_count->bind(1, limits.max_rows);
    if (auto r = by_count->run(); !r)
        return r.error();
    removed += c.changes();
    return removed;
}

} // namespace

state_result<void> rejected_event_repository::append(std::span<const rejected_event> events) {
    if (events.empty())
        return {};
    return db_->write("record rejected events", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("INSERT INTO rejected_events (at, tenant, principal, kind, topic, reason) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           "record rejected events");
        if (!s)
            return s.error();
        std::int64_t newest = events.front().at_ms;
        for (const auto& e : events) {
            s->bind(1, e.at_ms).bind(2, e.tenant).bind(3, e.principal).bind(4, e.kind).bind(5, e.topic).bind(6, e.reason);
            if (auto r = s->run(); !r)
                return r;
            newest = std::max(newest, e.at_ms);
        }
        auto pruned = prune_in(c, limits_, newest);
        if (!pruned)
            return pruned.error();
        return {};
    });
}

state_result<std::int64_t> rejected_event_repository::prune(std::int64_t now_ms) {
    std::int64_t removed = 0;
    auto r = db_->write("prune rejected events", [&](detail::connection& c) -> state_result<void> {
        auto n = prune_in(c, limits_, now_ms);
        if (!n)
            return n.error();
        removed = *n;
        return {};
    });
    if (!r)
        return r.error();
    return removed;
}

state_result<std::vector<rejected_event>> rejected_event_repository::list_recent(const rejected_event_query& q) const {
    std::vector<rejected_event> out;
    const auto limit = static_cast<std::int64_t>(std::clamp<std::size_t>(q.limit, 1, 1000));
    auto r = db_->read("list rejected events", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT id, at, tenant, principal, kind, topic, reason FROM rejected_events "
                           "WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR id < ?2) "
                           "ORDER BY id DESC LIMIT ?3",
                           "list rejected events");
        if (!s)
            return s.error();
        s->bind(1, q.tenant).bind(2, q.before_id).bind(3, limit);
        return s->each([&](const detail::statement& row) {
            out.push_back({row.int64(0), row.int64(1), row.optional_text(2), row.text(3), row.text(4), row.text(5),
                           row.text(6)});
        });
    });
    if (!r)
        return r.error();
    return out;
}

} // namespace pulsegate::storage::state
