#pragma once
// The outbox (delivery_model.hpp): jobs are inserted with their alert
// (alert_repository::upsert), claimed by the delivery dispatcher in
// batches, and finished with one attempt row each, also in batches, so a
// busy outbox costs a few transactions per batch, not per job.
//
// Thread safety: as database (any thread; blocking).

#include "storage/state/database.hpp"
#include "storage/state/delivery_model.hpp"
#include "storage/state/error.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pulsegate::storage::state {

// What became of one claimed job.
struct job_completion {
    delivery_attempt attempt;            // attempt.job names the job
    job_state state = job_state::pending; // pending (retry later), delivered, dead
    std::int64_t next_attempt_at_ms = 0; // when pending
    bool counts = true;                  // false: not an attempt (circuit open, ...): attempts unchanged, no row
};

struct delivery_filter {
    std::optional<std::int64_t> alert;
    std::optional<std::int64_t> integration;
    std::optional<job_state> state;
};

struct delivery_entry {
    delivery_job job;
    std::vector<delivery_attempt> attempts; // oldest first
};

struct delivery_page {
    std::vector<delivery_entry> items;
    std::optional<std::string> next_cursor;
};

class delivery_repository {
public:
    explicit delivery_repository(database& db) noexcept : db_(&db) {}

    // Inserts jobs made outside an alert's transaction (the daily digest),
    // as alert_repository::upsert does: a job whose (event_key, integration)
    // exists already, or whose integration is gone, is skipped. Returns how
    // many were inserted.
    state_result<std::int64_t> enqueue(std::span<const new_delivery_job> jobs);
    // Jobs left in_flight by a process that stopped before finishing them go
    // back to pending (sent again: receivers dedupe by the job id). Returns how many.
    state_result<std::int64_t> requeue_in_flight(std::int64_t now_ms);
    // In one transaction: pending jobs due at `now_ms`, oldest due first, at
    // most `per_integration` of each integration (so one integration's
    // backlog never hides the others'), offered to `admit`; those admitted
    // (at most `max`) become in_flight and are returned.
    state_result<std::vector<delivery_job>> claim_due(std::int64_t now_ms, std::size_t max,
                                                      std::size_t per_integration,
                                                      const std::function<bool(const delivery_job&)>& admit);
    // Pending jobs of `integration` due before `until_ms` wait until then
    // (its circuit breaker opened). Returns how many.
    state_result<std::int64_t> defer(std::int64_t integration, std::int64_t until_ms);
    // One transaction for all.
    state_result<void> finish(std::span<const job_completion> done);
    // One turn of the dispatcher in one transaction (one fsync): finish
    // `done`, defer (integration, until) pairs, then claim_due. Nothing of
    // it stays if any part fails.
    state_result<std::vector<delivery_job>> cycle(std::span<const job_completion> done,
                                                  std::span<const std::pair<std::int64_t, std::int64_t>> defers,
                                                  std::int64_t now_ms, std::size_t max, std::size_t per_integration,
                                                  const std::function<bool(const delivery_job&)>& admit);
    // The earliest next_attempt_at of a pending job, if any.
    state_result<std::optional<std::int64_t>> next_due() const;
    // Newest first, with their attempts.
    state_result<delivery_page> list(std::string_view tenant, const delivery_filter& f, std::size_t limit = 100,
                                     std::optional<std::string_view> cursor = std::nullopt) const;
    state_result<std::optional<delivery_entry>> get(std::string_view tenant, std::int64_t id) const;
    // Counts by state (metrics).
    struct counts {
        std::int64_t pending = 0, in_flight = 0, delivered = 0, dead = 0;
    };
    state_result<counts> count() const;

private:
    database* db_;
};

} // namespace pulsegate::storage::state
