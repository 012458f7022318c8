#include "storage/state/web_session_repository.hpp"

#include "storage/state/connection.hpp"

namespace pulsegate::storage::state {

namespace {

// id_hash is a BLOB column (schema v1); the digest travels as its hex text,
// stored as those bytes (CAST) and read back as text.
#define PULSEGATE_SESSION_COLUMNS                                                                                     \
    "CAST(id_hash AS TEXT), user_id, csrf_token, created_at, last_seen_at, idle_expires_at, expires_at, remote_addr"

web_session session_from(const detail::statement& s) {
    return {s.text(0), s.int64(1), s.text(2), s.int64(3), s.int64(4), s.int64(5), s.int64(6), s.text(7)};
}

// Runs one DELETE or UPDATE in a write transaction and returns changes().
state_result<std::int64_t> write_count(database& db, std::string_view operation, const char* sql, auto bind) {
    std::int64_t n = 0;
    auto r = db.write(operation, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare(sql, operation);
        if (!s)
            return s.error();
        bind(*s);
        if (auto done = s->run(); !done)
            return done;
        n = c.changes();
        return {};
    });
    if (!r)
        return r.error();
    return n;
}

} // namespace

state_result<void> web_session_repository::create(const web_session& ws) {
    if (ws.id_hash.empty() || ws.csrf_token.empty())
        return make_state_error(state_errc::invalid_argument, "create web session: the id hash or CSRF token is empty");
    const std::string what = "create web session for user " + std::to_string(ws.user_id);
    auto r = db_->write(what, [&](detail::connection& c) -> state_result<void> {
        auto q = c.prepare("SELECT 1 FROM users WHERE id = ?", "create web session: look up user");
        if (!q)
            return q.error();
        q->bind(1, ws.user_id);
        auto found = q->step();
        if (!found)
            return found.error();
        if (!*found)
            return make_state_error(state_errc::constraint_violation,
                                    what + ": no user with id " + std::to_string(ws.user_id));
        auto s = c.prepare("INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, "
                           "idle_expires_at, expires_at, remote_addr) VALUES (CAST(? AS BLOB), ?, ?, ?, ?, ?, ?, ?)",
                           "create web session");
        if (!s)
            return s.error();
        s->bind(1, ws.id_hash).bind(2, ws.user_id).bind(3, ws.csrf_token).bind(4, ws.created_at_ms)
            .bind(5, ws.last_seen_at_ms).bind(6, ws.idle_expires_at_ms).bind(7, ws.expires_at_ms)
            .bind(8, ws.remote_addr);
        return s->run();
    });
    if (!r && r.error().code == state_errc::already_exists)
        return make_state_error(state_errc::already_exists, what + ": the session id is taken; generate another");
    return r;
}

state_result<std::optional<web_session>> web_session_repository::get(std::string_view id_hash,
                                                                     std::int64_t now_ms) const {
    std::optional<web_session> out;
    auto r = db_->read("get web session", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_SESSION_COLUMNS " FROM web_sessions WHERE id_hash = CAST(?1 AS BLOB) "
                           "AND ?2 < idle_expires_at AND ?2 < expires_at",
                           "get web session");
        if (!s)
            return s.error();
        s->bind(1, id_hash).bind(2, now_ms);
        return s->each([&](const detail::statement& row) { out = session_from(row); });
    });
    if (!r)
        return r.error();
    return out;
}

state_result<void> web_session_repository::touch(std::string_view id_hash, std::int64_t now_ms,
                                                 std::int64_t idle_expires_at_ms) {
    auto n = write_count(*db_, "touch web session",
                         "UPDATE web_sessions SET last_seen_at = max(last_seen_at, ?2), "
                         "idle_expires_at = max(idle_expires_at, min(?3, expires_at)) "
                         "WHERE id_hash = CAST(?1 AS BLOB) AND ?2 < idle_expires_at AND ?2 < expires_at",
                         [&](detail::statement& s) { s.bind(1, id_hash).bind(2, now_ms).bind(3, idle_expires_at_ms); });
    if (!n)
        return n.error();
    if (*n == 0)
        return make_state_error(state_errc::not_found, "touch web session: no such live session (expired or logged out)");
    return {};
}

state_result<void> web_session_repository::remove(std::string_view id_hash) {
    auto n = write_count(*db_, "remove web session", "DELETE FROM web_sessions WHERE id_hash = CAST(? AS BLOB)",
                         [&](detail::statement& s) { s.bind(1, id_hash); });
    if (!n)
        return n.error();
    return {};
}

state_result<std::int64_t> web_session_repository::remove_for_user(std::int64_t user_id) {
    return write_count(*db_, "remove web sessions of a user", "DELETE FROM web_sessions WHERE user_id = ?",
                       [&](detail::statement& s) { s.bind(1, user_id); });
}

state_result<std::int64_t> web_session_repository::prune_expired(std::int64_t now_ms) {
    return write_count(*db_, "prune web sessions",
                       "DELETE FROM web_sessions WHERE expires_at <= ?1 OR idle_expires_at <= ?1",
                       [&](detail::statement& s) { s.bind(1, now_ms); });
}

} // namespace pulsegate::storage::state
