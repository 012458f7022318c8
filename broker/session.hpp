#pragma once
// The state MQTT keeps for one client id, apart from any connection: its
// subscriptions, the messages queued and in flight towards it, the QoS 2
// packet ids it has sent us and not yet released, its will and its expiry.
//
// Owner: exactly one shard at a time (the shard of its connection, or of its
// last connection while offline). A session moves between shards only as a
// whole, handed over by its owner (see server.cpp, "takeover").
//
// Queue bound and acknowledgements: a QoS 1/2 message is acknowledged to its
// publisher only when every session it goes to has accepted it. A session
// accepts a message while its queue holds fewer than `max_queued` entries;
// beyond that an online session still queues it but *holds* the publisher's
// acknowledgement until the entry moves inside the bound, which throttles the
// publisher through its own Receive Maximum instead of dropping what was
// acknowledged. An offline session with a full queue refuses QoS 1/2 (the v5
// publisher sees 0x97 quota exceeded) and drops QoS 0; both are counted.

#include "broker/auth.hpp"
#include "broker/message.hpp"
#include "broker/protocol/packet.hpp"
#include "broker/ring_queue.hpp"

#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pulsegate::broker {

namespace detail {
class connection;
}

// Tracks one QoS 1/2 publish until every queue it went into accepted it; the
// last release sends the PUBACK/PUBREC on the publisher's shard.
struct ack_ticket {
    std::atomic<int> holds{1};
    std::atomic<bool> refused{false}; // a queue refused it: v5 reason 0x97
    unsigned origin_shard = 0;
    std::uint64_t connection_id = 0;
    std::uint16_t packet_id = 0;
    std::uint8_t qos = 1;
    // Sent instead of a PUBACK/PUBREC: a SUBACK/UNSUBACK waiting for the
    // session record it acknowledges to be durable.
    std::unique_ptr<protocol::packet> deferred;
};
using ticket_ptr = std::shared_ptr<ack_ticket>;

struct subscription_options {
    std::uint8_t qos = 0;
    bool no_local = false;
    bool retain_as_published = false;
    std::uint8_t retain_handling = 0;
    std::uint32_t subscription_id = 0; // 0 = none
};

// One message on its way to one session.
struct delivery {
    message_ptr msg;
    std::uint8_t qos = 0;  // min(message QoS, granted QoS)
    bool retain = false;   // RETAIN flag as sent
    boost::container::small_vector<std::uint32_t, 1> subscription_ids;
    ticket_ptr hold; // set while this entry holds its publisher's ack
    std::uint64_t stored = 0; // sequence of its durable record (persistence.hpp); 0: none
};

struct inflight_message {
    delivery d;
    std::uint16_t packet_id = 0;
    bool released = false; // QoS 2: PUBREC received, PUBREL sent, awaiting PUBCOMP
    bool sent = true;      // false: to be resent on this connection
};

// The will of a connection, copied out of its CONNECT.
struct will_spec {
    std::string topic; // internal name
    std::string payload;
    std::string forwarded_props;
    std::optional<std::uint32_t> message_expiry;
    std::uint32_t delay_s = 0;
    std::uint8_t qos = 0;
    bool retain = false;
};

class session {
public:
    session(std::string client_id, std::uint64_t id) : client_id_(std::move(client_id)), id_(id) {}

    const std::string& client_id() const noexcept { return client_id_; }
    std::uint64_t id() const noexcept { return id_; }

    client_identity identity;
    std::string mount; // "t/{tenant}/" or empty
    protocol::protocol_version version = protocol::protocol_version::v5;
    std::uint32_t expiry_interval = 0; // seconds; 0xFFFFFFFF never
    bool clean_on_close() const noexcept { return expiry_interval == 0; }

    // Internal filter (mounted; "$share/{group}/{filter}" for shared ones) ->
    // options.
    std::map<std::string, subscription_options, std::less<>> subscriptions;

    // Ring buffers: nothing allocated while idle (10,000s of sessions) and
    // nothing per message in steady state.
    ring_queue<delivery> queue;
    ring_queue<inflight_message> inflight; // in send order, for redelivery
    // QoS 2 packet ids received from the client and not yet released by PUBREL,
    // and those of them whose PUBREC has not been sent yet (a resend of one
    // of those is answered by that PUBREC, not by another).
    std::vector<std::uint16_t> inbound_qos2;
    std::vector<std::uint16_t> inbound_qos2_unacked;

    // Back-pressure (see shard::apply_pressure): publishers paused because
    // this session's queue passed its high-water mark, as (shard, session id).
    std::vector<std::pair<unsigned, std::uint64_t>> paused_publishers;

    std::unique_ptr<will_spec> will; // (a pointer: most sessions have none)
    // Offline with a delayed will: when it is due (will delay interval).
    std::optional<clock::time_point> will_due;
    clock::time_point offline_since{};
    detail::connection* conn = nullptr; // null while offline

    // Durability (persistence.hpp): the session's key, whether its record is
    // stored, the last sequence given to one of its queued records.
    std::string store_key;
    bool stored = false;
    std::uint64_t store_seq = 0;

    // Enqueues `d`; returns false if refused: the queue is full and the
    // session offline, or the delivery is QoS 0. When a QoS 1/2 delivery lands
    // beyond the bound of an online session it keeps `d.hold` (adding a hold
    // to the ticket); otherwise the hold is dropped.
    // `force` queues regardless of the bound (retained messages sent on
    // subscribe: a burst the client asked for, bounded by the retained set).
    bool enqueue(delivery&& d, std::size_t max_queued, bool force = false);
    // When the session goes offline: entries beyond the bound are refused
    // (their publishers' held acks released with "refused"), as an offline
    // session would have refused them. Returns the tickets to release.
    void trim_to_bound(std::size_t max_queued, std::vector<ticket_ptr>& to_release);
    // Removes the front entry and releases the hold of the entry that moves
    // inside the bound, if any. Returns the tickets to release.
    delivery pop_front(std::size_t max_queued, std::vector<ticket_ptr>& to_release);

    std::uint16_t next_packet_id() noexcept;
    inflight_message* find_inflight(std::uint16_t packet_id) noexcept;
    bool erase_inflight(std::uint16_t packet_id) noexcept;

    bool has_inbound_qos2(std::uint16_t id) const noexcept {
        return std::find(inbound_qos2.begin(), inbound_qos2.end(), id) != inbound_qos2.end();
    }

private:
    std::string client_id_;
    std::uint64_t id_;
    std::uint16_t last_packet_id_ = 0;
};

} // namespace pulsegate::broker
