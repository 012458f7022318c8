#pragma once
// The broker's durability port: what must survive kill -9 and a restart.
//
//   - sessions: every persistent session (Session Expiry Interval > 0): its
//     identity, protocol version, expiry, subscriptions and when it went
//     offline. Key: the registry key (tenant '\0' client id).
//   - queued:   every QoS 1/2 message queued or in flight towards a
//     persistent session. Key: session key '\0' u64 BE sequence, so a scan
//     returns each session's messages in order. QoS 2 entries are rewritten
//     when they get their packet id and when PUBREC releases them, so a
//     restart resends the same PUBLISH (DUP) or PUBREL as MQTT requires.
//   - retained: every retained message. Key: internal topic.
//
// Records are the broker's own byte format (persistence.cpp); the store keeps
// them by key. Calls come from shard threads and must not block: the store
// queues the write and commits soon (group commit). A non-null `hold` is a
// publisher's acknowledgement waiting for this write: the store passes it to
// server::release_hold once the write is durable.

#include <functional>
#include <memory>
#include <string_view>

namespace pulsegate::broker {

enum class durable_table : unsigned char { sessions, queued, retained };

class state_store {
public:
    virtual ~state_store() = default;
    // Whether acknowledgements wait for durability (durability "commit"): the
    // broker then passes holds, and holds back a SUBACK/UNSUBACK until the
    // session record that it acknowledges is stored (MQTT lets PUBLISH
    // packets of the new subscription go before the SUBACK).
    virtual bool holds_acks() const noexcept = 0;
    virtual void put(durable_table t, std::string_view key, std::string_view value, std::shared_ptr<void> hold) = 0;
    virtual void erase(durable_table t, std::string_view key, std::shared_ptr<void> hold) = 0;
    // Every record of `t` in key order; called by server::start() before any
    // client is accepted.
    virtual void load(durable_table t, const std::function<void(std::string_view key, std::string_view value)>& f) = 0;
};

} // namespace pulsegate::broker
