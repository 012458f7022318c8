#pragma once
// An application message as the broker holds it between the publisher and
// its subscribers: immutable once routed, shared by every queue it sits in
// and every shard it reaches.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace pulsegate::broker {

using clock = std::chrono::steady_clock;

struct message {
    std::string topic;   // internal name (mounted: "t/{tenant}/...")
    std::string payload;
    // v5 properties forwarded unchanged to subscribers (payload format,
    // content type, response topic, correlation data, user properties),
    // pre-encoded once in wire format without the length prefix.
    std::string forwarded_props;
    std::optional<clock::time_point> expires_at; // message expiry
    std::uint64_t publisher_session = 0;         // for no-local; 0 = none
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
};

using message_ptr = std::shared_ptr<const message>;

} // namespace pulsegate::broker
