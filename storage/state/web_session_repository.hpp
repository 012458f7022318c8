#pragma once
// Web UI sessions (the login cookie). The cookie value is never stored:
// rows are keyed by its keyed digest (engine/identity.hpp credential_digest),
// so a leaked database or backup opens no session.
//
// A session is live while now < idle_expires_at (pushed forward by touch on
// use) and now < expires_at (absolute, fixed at login). get and touch treat
// a session past either limit exactly like a missing one; prune_expired
// deletes them.
//
// Sessions have no tenant column: they belong to a user, whose tenant and
// role the caller reads through user_repository.
//
// Thread safety: as database (any thread; blocking).

#include "storage/state/database.hpp"
#include "storage/state/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pulsegate::storage::state {

struct web_session {
    std::string id_hash;        // digest of the cookie value (64 hex characters)
    std::int64_t user_id = 0;
    std::string csrf_token;     // sent back at login; required on state-changing requests
    std::int64_t created_at_ms = 0;
    std::int64_t last_seen_at_ms = 0;
    std::int64_t idle_expires_at_ms = 0;
    std::int64_t expires_at_ms = 0; // absolute
    std::string remote_addr;        // where the login came from, "" if unknown

    bool live_at(std::int64_t now_ms) const noexcept { return now_ms < idle_expires_at_ms && now_ms < expires_at_ms; }
    friend bool operator==(const web_session&, const web_session&) = default;
};

class web_session_repository {
public:
    explicit web_session_repository(database& db) noexcept : db_(&db) {}

    // Errors: invalid_argument (empty id hash or CSRF token),
    // constraint_violation (no such user), already_exists (the id hash is
    // taken: generate another id).
    state_result<void> create(const web_session& s);
    // The session if it exists and is live at now_ms.
    state_result<std::optional<web_session>> get(std::string_view id_hash, std::int64_t now_ms) const;
    // Marks a live session used at now_ms and moves its idle expiry to
    // idle_expires_at_ms (never past the absolute expiry, never backwards).
    // not_found if it is missing or no longer live.
    state_result<void> touch(std::string_view id_hash, std::int64_t now_ms, std::int64_t idle_expires_at_ms);
    // Logout. Removing a missing session is not an error (a double logout).
    state_result<void> remove(std::string_view id_hash);
    // Every session of a user (password change, user disabled); how many.
    state_result<std::int64_t> remove_for_user(std::int64_t user_id);
    // Deletes sessions that are no longer live at now_ms; how many.
    state_result<std::int64_t> prune_expired(std::int64_t now_ms);

private:
    database* db_;
};

} // namespace pulsegate::storage::state
