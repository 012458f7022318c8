#pragma once
// Rejected events: publishes, subscriptions and connections the broker
// denied (ACL, authentication), for the operator's "rejected" view. The
// table is bounded: every append prunes rows beyond `max_rows` and older
// than `max_age_ms` (relative to the newest appended event), so a device
// hammering a forbidden topic cannot grow the database.
//
// Writes should be batched by the caller (one transaction per batch): the
// broker may reject thousands of publishes a second.
//
// Thread safety: as database (any thread; blocking).

#include "storage/state/database.hpp"
#include "storage/state/error.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace pulsegate::storage::state {

struct rejected_event {
    std::int64_t id = 0;      // set by the database (ignored on input)
    std::int64_t at_ms = 0;   // epoch ms
    std::optional<std::string> tenant;
    std::string principal;    // "acme/dev-1", "anonymous", "acme/api"
    std::string kind;         // "publish", "subscribe", "connect"
    std::string topic;        // as the client named it; "" for connect
    std::string reason;       // "not authorized", "bad user name or password"

    friend bool operator==(const rejected_event&, const rejected_event&) = default;
};

struct rejected_event_limits {
    std::size_t max_rows = 100000;
    std::int64_t max_age_ms = 30LL * 24 * 3600 * 1000;
};

struct rejected_event_query {
    std::optional<std::string> tenant{};
    std::optional<std::int64_t> before_id{}; // page cursor
    std::size_t limit = 100;               // clamped to 1..1000
};

class rejected_event_repository {
public:
    explicit rejected_event_repository(database& db, rejected_event_limits limits = {}) noexcept
        : db_(&db), limits_(limits) {}

    // Appends the batch and prunes, in one transaction.
    state_result<void> append(std::span<const rejected_event> events);
    // Newest first.
    state_result<std::vector<rejected_event>> list_recent(const rejected_event_query& q = {}) const;
    // Deletes rows older than now_ms - max_age_ms and beyond the newest
    // max_rows; returns how many went.
    state_result<std::int64_t> prune(std::int64_t now_ms);

private:
    database* db_;
    rejected_event_limits limits_;
};

} // namespace pulsegate::storage::state
