#pragma once
// A durable FIFO of MQTT messages in its own LMDB environment: the upstream
// bridge's store-and-forward queue (DESIGN.md, Scale-out).
//
// Every message gets the next sequence number; keys are the u64 sequence
// big-endian, so the queue is read in order with a cursor. Bounds:
//   - max_messages: a push beyond it evicts the oldest messages in the same
//     transaction (the newest data wins, as EMQX's buffers do);
//   - max_age: drop_older_than() removes messages queued before a cutoff;
//   - the map size (max_bytes): a push that does not fit evicts the oldest
//     quarter (at least as many as it brings) and tries again, up to three
//     times; what still does not fit is refused.
// Every message removed by a bound is counted in the result of the call
// that removed it; the caller reports them.
//
// Appends are durable when they return (with `sync`); removals are not
// fsynced: after a crash a removed message may come back and be sent again
// (at least once), never the other way round.
//
// Not thread safe: one thread (the bridge's worker) owns the queue. Every
// call runs a transaction and, when `sync` is set, waits for fsync: never
// call it on a shard thread.

#include "common/forward_record.hpp"

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::storage {

struct forward_queue_options {
    std::filesystem::path dir;            // created if missing
    std::uint64_t max_messages = 1000000;
    std::uint64_t max_bytes = 1ull << 30; // the LMDB map size
    bool sync = true;                     // fsync every commit (durability "commit")
};

using common::forward_item;
using common::push_result;
using common::queued_message;

class forward_queue {
public:
    // Opens or creates the environment. Throws std::system_error naming the
    // directory (startup), or std::runtime_error for an unknown format.
    explicit forward_queue(forward_queue_options opts);
    ~forward_queue();
    forward_queue(const forward_queue&) = delete;
    forward_queue& operator=(const forward_queue&) = delete;

    // Appends `items` in one transaction (one fsync), evicting the oldest
    // messages beyond max_messages. An error leaves the queue as it was.
    boost::system::result<push_result> push(std::span<const forward_item> items);

    // Up to `max` messages with seq >= `from`, in order, into `out`
    // (cleared first).
    boost::system::error_code read(std::uint64_t from, std::size_t max, std::vector<queued_message>& out) const;

    // Removes every message with seq <= `seq` (sent and acknowledged).
    boost::system::error_code remove_through(std::uint64_t seq);

    // Removes the messages queued before `cutoff_ms`; returns how many.
    boost::system::result<std::uint64_t> drop_older_than(std::int64_t cutoff_ms);

    std::uint64_t size() const noexcept { return count_; }
    // The oldest message's queued_ms; 0 when empty.
    std::int64_t oldest_ms() const noexcept { return oldest_ms_; }
    // The sequence of the next message pushed.
    std::uint64_t next_seq() const noexcept { return next_seq_; }

private:
    struct lmdb;
    boost::system::error_code refresh_oldest(void* txn);
    boost::system::result<std::uint64_t> evict_oldest(void* txn, std::uint64_t n);
    // Removes messages from the front while `more` says so, in a transaction
    // committed without fsync (see above).
    boost::system::result<std::uint64_t> remove_front(
        const std::function<bool(std::uint64_t seq, std::int64_t queued_ms)>& more);

    forward_queue_options opts_;
    std::unique_ptr<lmdb> db_;
    std::uint64_t count_ = 0;
    std::uint64_t next_seq_ = 1;
    std::int64_t oldest_ms_ = 0;
};

} // namespace pulsegate::storage
