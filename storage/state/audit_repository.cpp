#include "storage/state/audit_repository.hpp"

#include "storage/state/connection.hpp"

#include <algorithm>

namespace pulsegate::storage::state {

state_result<std::int64_t> audit_repository::append(const audit_entry& e) {
    if (e.actor.empty() || e.action.empty())
        return make_state_error(state_errc::invalid_argument, "append to the audit log: actor and action are required");
    std::int64_t id = 0;
    auto r = db_->write("append to the audit log", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("INSERT INTO audit_log (at, actor, tenant, action, target, details) VALUES (?, ?, ?, ?, ?, ?)",
                           "append to the audit log");
        if (!s)
            return s.error();
        s->bind(1, e.at_ms).bind(2, e.actor).bind(3, e.tenant).bind(4, e.action).bind(5, e.target).bind(6, e.details_json);
        if (auto done = s->run(); !done)
            return done;
        id = c.last_insert_rowid();
        return {};
    });
    if (!r)
        return r.error();
    return id;
}

state_result<std::vector<audit_entry>> audit_repository::list_recent(const audit_query& q) const {
    std::vector<audit_entry> out;
    const auto limit = static_cast<std::int64_t>(std::clamp<std::size_t>(q.limit, 1, 1000));
    auto r = db_->read("list the audit log", [&](detail::connection& c) -> state_result<void> {
        // NULL parameters disable their filter; the id cursor keeps paging
        // stable while entries are appended.
        auto s = c.prepare("SELECT id, at, actor, tenant, action, target, details FROM audit_log "
                           "WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR actor = ?2) "
                           "AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4",
                           "list the audit log");
        if (!s)
            return s.error();
        s->bind(1, q.tenant).bind(2, q.actor).bind(3, q.before_id).bind(4, limit);
        return s->each([&](const detail::statement& row) {
            out.push_back({row.int64(0), row.int64(1), row.text(2), row.optional_text(3), row.text(4), row.text(5),
                           row.text(6)});
        });
    });
    if (!r)
        return r.error();
    return out;
}

} // namespace pulsegate::storage::state
