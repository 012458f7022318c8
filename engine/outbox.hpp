#pragma once
// The outbox workers (DESIGN.md, Delivery): drain the delivery jobs the
// router wrote with their events, through the adapters.
//
//   dispatcher thread: every database write of the outbox, in batches --
//     claims due jobs (at most `per_integration` in flight per integration,
//     none of an integration whose circuit is open), loads their
//     integrations (secrets opened), queues them for the workers, and
//     records what the workers report: one attempt row per try, the job
//     delivered, dead, or pending again after a backoff.
//   worker threads (`workers`): one job at a time, a blocking send through
//     the integration type's sender.
//
// Retries: attempt n failed with a retryable outcome -> next attempt after
// backoff_initial * 2^(n-1) (capped at backoff_max), half of it random
// (jitter); after max_attempts tries the job is dead. A receiver that fails
// `breaker_threshold` times in a row opens its integration's circuit for
// breaker_cooldown: its jobs wait (not counted as attempts) and the other
// integrations' jobs go on; the first job after the cooldown probes it.
//
// Restart: jobs left in flight by a stopped process are sent again (at
// least once); every request carries the job id as idempotency key so that
// a receiver can drop the second copy.
//
// Never called from a shard: notify() only signals a condition variable.

#include "adapters/sender.hpp"
#include "engine/alert_event.hpp"
#include "storage/state/database.hpp"
#include "storage/state/delivery_model.hpp"
#include "storage/state/secret_box.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace pulsegate::engine {

struct outbox_options {
    std::size_t workers = 4;
    std::size_t per_integration = 8;          // jobs of one integration in flight at once
    std::int64_t backoff_initial_ms = 1000;
    std::int64_t backoff_max_ms = 300'000;
    std::size_t breaker_threshold = 5;        // retryable failures in a row that open the circuit
    std::int64_t breaker_cooldown_ms = 30'000;
};

struct outbox_stats {
    std::uint64_t attempts = 0;
    std::uint64_t delivered = 0;
    std::uint64_t retried = 0;
    std::uint64_t dead = 0;
    std::uint64_t circuits_opened = 0;
    std::uint64_t db_errors = 0;
};

// What a test send (POST /api/v1/integrations/{id}/test) did.
struct test_outcome {
    adapters::send_result result;
    std::int64_t latency_ms = 0;
};

class outbox final : public alert_event_sink {
public:
    using clock_fn = std::function<std::int64_t()>; // epoch ms
    // `senders`: by integration type; not owned, outlive the outbox.
    outbox(storage::state::database& db, const storage::state::secret_box& box, outbox_options o,
           std::map<std::string, adapters::sender*, std::less<>> senders, clock_fn clock = {});
    ~outbox() override;
    outbox(const outbox&) = delete;
    outbox& operator=(const outbox&) = delete;

    // Requeues what a previous process left in flight, starts the threads.
    // Throws std::runtime_error naming the failure.
    void start();
    void stop(); // waits for the sends in progress, records them, joins

    // New jobs were committed (called by the rules engine's writer after
    // each commit, as a durable sink): look now rather than at the next tick.
    void notify();
    void on_alert_event(const alert_event&) override { notify(); }
    // An integration changed through the API: its cached settings are stale.
    void integrations_changed();

    // Sends a synthetic alert through `r` now, on the calling thread,
    // touching no job and no alert.
    test_outcome send_test(const storage::state::integration_record& r);

    outbox_stats stats() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// The synthetic alert of a test send, as an event JSON.
std::string test_event_json(std::string_view tenant, std::int64_t now_ms);

} // namespace pulsegate::engine
