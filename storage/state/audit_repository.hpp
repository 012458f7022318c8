#pragma once
// The audit log: who did what, when, to what. Append-only; the operator
// view lists it newest first, a page at a time.
//
// Thread safety: as database (any thread; blocking).

#include "storage/state/database.hpp"
#include "storage/state/error.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pulsegate::storage::state {

struct audit_entry {
    std::int64_t id = 0;       // set by append (ignored on input)
    std::int64_t at_ms = 0;    // epoch ms
    std::string actor;         // "user:admin", "token:12", "cli:init"
    std::optional<std::string> tenant;
    std::string action;        // "user.create", "tenant.list", ...
    std::string target;        // "user:alice", "" when none
    std::string details_json = "{}"; // a JSON value

    friend bool operator==(const audit_entry&, const audit_entry&) = default;
};

struct audit_query {
    std::optional<std::string> tenant{};     // only this tenant's entries
    std::optional<std::string> actor{};      // only this actor's entries
    std::optional<std::int64_t> before_id{}; // page cursor: entries older than this id
    std::size_t limit = 100;               // clamped to 1..1000
};

class audit_repository {
public:
    explicit audit_repository(database& db) noexcept : db_(&db) {}

    // The new entry's id. Errors: invalid_argument (empty actor or action),
    // constraint_violation (details_json is not JSON).
    state_result<std::int64_t> append(const audit_entry& e);
    // Newest first.
    state_result<std::vector<audit_entry>> list_recent(const audit_query& q = {}) const;

private:
    database* db_;
};

} // namespace pulsegate::storage::state
