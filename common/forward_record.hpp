#pragma once
// The records of a store-and-forward queue, shared by the queue on LMDB
// (storage/forward_queue.hpp) and the bridge that sends from it
// (adapters/bridge.hpp), which may not see each other. Header-only.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pulsegate::common {

// A message to append. `queued_ms` is the epoch time it was accepted.
struct forward_item {
    std::string_view topic;
    std::string_view payload;
    std::int64_t queued_ms = 0;
    std::uint8_t qos = 0;
    bool retain = false;
};

// A message read back, with its place in the queue.
struct queued_message {
    std::uint64_t seq = 0;
    std::int64_t queued_ms = 0;
    std::uint8_t qos = 0;
    bool retain = false;
    std::string topic;
    std::string payload;
};

// What an append did.
struct push_result {
    std::size_t appended = 0;  // the first ones of the batch, in order
    std::size_t refused = 0;   // the rest: no room even after evicting
    std::uint64_t evicted = 0; // older messages removed to make room
};

} // namespace pulsegate::common
