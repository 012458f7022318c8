#pragma once
// An application message as the broker holds it between the publisher and
// its subscribers: immutable once routed, shared by every queue it sits in
// and every shard it reaches.
//
// Messages are recycled rather than freed: each shard has a message_pool,
// and the last reference to a message (dropped on whatever shard) pushes it
// back onto its pool, strings and all, so that in steady state a publish
// reuses a message whose topic and payload buffers already have the capacity
// it needs, and the hot path allocates nothing.

#include <atomic>
#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace pulsegate::broker {

using clock = std::chrono::steady_clock;

class message_pool;

struct message {
    std::string topic;   // internal name (mounted: "t/{tenant}/...")
    std::string payload;
    // v5 properties forwarded unchanged to subscribers (payload format,
    // content type, response topic, correlation data, user properties),
    // pre-encoded once in wire format without the length prefix.
    std::string forwarded_props;
    std::optional<clock::time_point> expires_at; // message expiry
    std::uint64_t publisher_session = 0;         // for no-local and back-pressure; 0 = none
    std::uint32_t origin_shard = 0;              // shard of the publisher
    std::uint32_t from_tap = 0;                  // the message_tap that injected it; 0 = none
    // Order of retained messages across shards: each shard keeps, per topic,
    // the retained message with the highest number, whatever order the shards
    // receive them in (an empty payload is kept as a tombstone for a while).
    std::uint64_t retain_seq = 0;
    std::uint8_t qos = 0;
    bool retain = false;

    // Whether the message has expired at `now`.
    bool expired(clock::time_point now) const noexcept {
        return expires_at && *expires_at <= now;
    }
    // Remaining Message Expiry Interval in whole seconds (>= 1), if any.
    std::optional<std::uint32_t> remaining_expiry(clock::time_point now) const noexcept {
        if (!expires_at) return std::nullopt;
        auto left = std::chrono::ceil<std::chrono::seconds>(*expires_at - now).count();
        return static_cast<std::uint32_t>(left < 1 ? 1 : left);
    }

    // The PUBLISH packet shared by every QoS 0 subscriber that needs nothing
    // of its own, per slot (protocol version x tenant view, see
    // connection::write_delivery). Encoded at most once, by the first thread
    // to claim the slot; others read it once it is published, or encode their
    // own copy while it is being written (they never wait).
    static constexpr unsigned shared_slots = 4;
    const std::string* shared_encoding(unsigned slot) const noexcept {
        return shared_state_[slot].load(std::memory_order_acquire) == 2 ? &shared_[slot] : nullptr;
    }
    std::string* begin_shared_encoding(unsigned slot) const noexcept {
        std::uint8_t empty = 0;
        if (!shared_state_[slot].compare_exchange_strong(empty, 1, std::memory_order_acquire)) return nullptr;
        shared_[slot].clear();
        return &shared_[slot];
    }
    void end_shared_encoding(unsigned slot) const noexcept { shared_state_[slot].store(2, std::memory_order_release); }

private:
    friend class message_pool;
    mutable std::string shared_[shared_slots];
    mutable std::atomic<std::uint8_t> shared_state_[shared_slots]{}; // 0 empty, 1 writing, 2 ready
    friend void intrusive_ptr_add_ref(const message* m) noexcept {
        m->refs_.fetch_add(1, std::memory_order_relaxed);
    }
    friend void intrusive_ptr_release(const message* m) noexcept;

    mutable std::atomic<std::uint32_t> refs_{0};
    message_pool* pool_ = nullptr; // null: deleted when released
    message* next_free_ = nullptr;
};

using message_ptr = boost::intrusive_ptr<const message>;
using mutable_message_ptr = boost::intrusive_ptr<message>;

// A free list of messages owned by one shard. acquire() runs on the owning
// shard only; a message may be released on any thread, so returns go to a
// lock-free stack that the owner takes whole (single consumer: no ABA).
// At most `max_free` messages are kept; buffers that grew past
// `max_kept_capacity` are freed rather than kept.
class message_pool {
public:
    explicit message_pool(std::size_t max_free = 4096) : max_free_(max_free) {}
    ~message_pool();
    message_pool(const message_pool&) = delete;
    message_pool& operator=(const message_pool&) = delete;

    // A message with empty fields (capacity kept), owned by this pool.
    mutable_message_ptr acquire();

private:
    friend void intrusive_ptr_release(const message* m) noexcept;
    void give_back(message* m) noexcept;

    static constexpr std::size_t max_kept_capacity = 64 * 1024;
    std::size_t max_free_;
    message* local_ = nullptr;                // owner's list
    std::atomic<message*> returned_{nullptr}; // pushed by any thread
    std::atomic<std::size_t> free_count_{0};  // in both lists
};

// A message owned by no pool (wills, $SYS, tests).
inline mutable_message_ptr make_message() { return mutable_message_ptr(new message()); }

} // namespace pulsegate::broker
