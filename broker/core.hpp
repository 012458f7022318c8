#pragma once
// Internals of the broker: shards, connections and the session registry.
// Not part of the broker's interface (server.hpp is).
//
// How the work is divided.
//
//   - A shard is one thread running one io_context. It owns the connections
//     accepted onto it (round-robin), their sessions, a subscription trie of
//     those sessions' (non-shared) subscriptions, and a full copy of the
//     retained messages. Nothing of a shard is touched from another thread:
//     other shards post to it.
//   - A publish accepted on shard S is delivered to S's own subscribers at
//     once and appended to an outbox per other shard; the outboxes are
//     posted as one batch per shard when S has handled everything it read
//     (`schedule_flush`). Every shard thus sees every message, in the order
//     each publisher sent it, and keeps its retained copy current without any
//     shared state.
//   - Shared subscriptions ($share/group/filter) are kept by shard 0, which
//     chooses one member per message round-robin and posts the delivery to
//     the member's shard.
//   - The client-id registry (which shard holds the session of a client id)
//     is the one structure behind a mutex, touched only at CONNECT and when a
//     session ends. A CONNECT whose session lives on another shard hops there
//     (co_await post), takes the session out and hops back with it.
//   - QoS 1/2 publishes carry an ack_ticket (session.hpp) through every
//     queue; the PUBACK/PUBREC is sent when the last hold is released.

#include "broker/rate_limit.hpp"
#include "broker/auth.hpp"
#include "broker/message.hpp"
#include "broker/options.hpp"
#include "broker/protocol/codec.hpp"
#include "broker/session.hpp"
#include "broker/stream.hpp"
#include "broker/subscription_trie.hpp"
#include "broker/sys_topics.hpp"
#include "broker/topic.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <cstdint>
#include <map>
#include <span>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace pulsegate::broker {
class publish_observer;
class message_tap;
class state_store;
}

namespace pulsegate::broker::detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct core;
class shard;

// Hash for unordered containers keyed by std::string that are looked up with
// a std::string_view (no temporary string).
struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// Monotonic counters of one shard, read by the $SYS publisher on shard 0.
struct shard_counters {
    std::atomic<std::uint64_t> bytes_received{0};
    std::atomic<std::uint64_t> bytes_sent{0};
    std::atomic<std::uint64_t> messages_received{0};
    std::atomic<std::uint64_t> messages_sent{0};
    std::atomic<std::uint64_t> publish_received{0};
    std::atomic<std::uint64_t> publish_sent{0};
    std::atomic<std::uint64_t> publish_dropped{0};
    std::atomic<std::uint64_t> publish_bytes_received{0};
    std::atomic<std::uint64_t> publish_bytes_sent{0};
    std::atomic<std::uint64_t> connections_total{0};
    std::atomic<std::uint64_t> clients_connected{0};
    std::atomic<std::uint64_t> clients_disconnected{0};
    std::atomic<std::uint64_t> clients_expired{0};
    std::atomic<std::uint64_t> subscriptions{0};
    std::atomic<std::uint64_t> retained{0};
    std::atomic<std::uint64_t> refused{0}; // refusals of every kind (limits, ACL)
    std::atomic<std::uint64_t> rate_limited{0}; // clients disconnected past a publish rate
    std::atomic<std::uint64_t> tenant_connections_refused{0}; // CONNECTs past a tenant's quota
    std::atomic<std::uint64_t> tenant_publishes_refused{0};   // PUBLISHes past a tenant's rate
};

// What a tenant's clients use of its quotas, shared by every shard. Entries
// live as long as the server (tenants are few), so connections keep a
// pointer.
struct tenant_usage {
    std::atomic<std::uint32_t> connections{0};
    std::mutex mutex; // the bucket
    token_bucket publishes;
    std::uint32_t rate = 0; // what `publishes` was made for
};

struct registry_entry;

// One client connection over any stream. Owner: its shard. Reading is the
// coroutine run(); writing is a single async_write in flight at a time, fed
// from `out_`.
class connection : public std::enable_shared_from_this<connection> {
public:
    connection(shard& owner, std::unique_ptr<stream> s, std::uint64_t id);
    ~connection();

    asio::awaitable<void> run();

    std::uint64_t id() const noexcept { return id_; }
    bool connected() const noexcept { return session_ != nullptr; }
    protocol::protocol_version version() const noexcept { return version_; }

    // Moves queued messages into the output as the inflight window allows,
    // then writes. Called on the owning shard.
    void pump();
    // Same, deferred to the end of the current batch (coalesces writes).
    void schedule_pump();

    // Sends the PUBACK/PUBREC of a publish whose ticket completed (or the
    // packet it deferred).
    void send_publish_ack(const ack_ticket& t);
    void send(const protocol::packet& p);

    // Ends the connection for `why` (server-side): v5 clients get a
    // DISCONNECT with that reason code and `reason`, then the socket closes
    // once the output is written. `publish_will` says whether the will goes.
    void close(protocol::reason_code why, std::string_view reason, bool publish_will = true);

    // The takeover path: a new connection takes the session. v5 clients get
    // DISCONNECT 0x8E; the connection closes without touching the session.
    std::shared_ptr<session> take_over();
    std::shared_ptr<session> release_session();

    // Periodic check (keep alive, connect timeout, pause expiry).
    void check_timeouts(clock::time_point now);

    // Back-pressure from congested subscribers (shard::apply_pressure).
    void pause_reading();
    void resume_reading();

    const std::string& remote_address() const noexcept { return remote_; }
    // The connected client's identity; null before CONNACK and once closed.
    const client_identity* identity() const noexcept;

private:
    asio::awaitable<bool> async_connect_phase();
    void start_reading();
    void on_read(boost::system::error_code ec, std::size_t n);
    asio::awaitable<bool> async_handle_connect(protocol::connect c);
    // The authenticator's answer, or nullopt if it did not come in time.
    asio::awaitable<std::optional<auth_result>> async_authenticate(const protocol::connect& c);
    void handle(const protocol::packet& p);
    void handle_publish(const protocol::publish& p);
    void handle_ack(const protocol::ack& a);
    void handle_subscribe(const protocol::subscribe& s);
    void handle_unsubscribe(const protocol::unsubscribe& u);
    void handle_disconnect(const protocol::disconnect& d);
    // Returns bytes consumed, or closes the connection and returns npos.
    std::size_t process(std::span<const std::uint8_t> data);

    // Encodes one PUBLISH of `d`; false if dropped (too large for the client).
    bool write_delivery(delivery& d, std::uint16_t packet_id, bool dup);
    void start_write();
    void on_written(boost::system::error_code ec, std::size_t n);
    void release_output_buffers();
    void begin_closing() noexcept {
        closing_ = true;
        closing_at_ = clock::now();
    }
    void finish_close();
    void detach_session(bool publish_will);
    // Moves this connection, before CONNACK, to the shard holding its session.
    void hand_off(shard& target, std::unique_ptr<stream> moved);
    void refuse(std::string_view what, protocol::reason_code code);
    void answer_refused(const protocol::publish& pub, protocol::reason_code code);
    bool tenant_allows_publish();
    asio::awaitable<bool> is_connected(const registry_entry& e);

    shard& shard_;
    std::unique_ptr<stream> stream_;
    std::uint64_t id_;
    std::string remote_;
    std::string certificate_; // stream::certificate_identity()
    clock::time_point opened_at_;
    clock::time_point last_rx_;
    token_bucket publish_rate_;  // options::max_publish_rate
    tenant_usage* tenant_ = nullptr; // counted in its connections; null: no tenant quota
    std::uint32_t tenant_rate_ = 0;  // the tenant's PUBLISH/s quota; 0: none
    token_bucket publish_bytes_; // options::max_publish_byte_rate
    clock::time_point closing_at_;

    std::shared_ptr<session> session_;
    protocol::protocol_version version_ = protocol::protocol_version::v5;
    std::uint16_t keep_alive_ = 0;
    bool request_problem_info_ = true;

    // Bytes of an incomplete packet kept between reads.
    std::vector<std::uint8_t> partial_;

    // Output: packets encoded back to back in `out_`; payloads of large
    // messages are referenced (out_refs_) rather than copied. `writing_`
    // holds the buffers of the write in flight.
    struct segment {
        std::size_t offset = 0, size = 0; // range of out_ (header bytes)
        const char* payload = nullptr;    // then this, if set
        std::size_t payload_size = 0;
    };
    std::string out_;
    std::vector<segment> segments_;
    std::vector<message_ptr> out_refs_;
    std::size_t out_payload_bytes_ = 0; // referenced payload bytes in out_refs_
    std::string wbuf_;
    std::vector<segment> wsegments_;
    std::vector<message_ptr> wrefs_;
    std::vector<asio::const_buffer> wbuffers_;
    bool write_in_flight_ = false;
    bool wrote_since_check_ = false; // since the last check_timeouts()
    // Back-pressure: pauses in force, whether a read is parked until they end.
    unsigned pauses_ = 0;
    std::shared_ptr<connection> parked_; // self, while a read is parked
    clock::time_point paused_at_;
    bool pump_scheduled_ = false;
    bool closing_ = false;
    bool closed_ = false;
    bool connect_seen_ = false; // a whole CONNECT has been read
    unsigned handoffs_ = 0;     // shards this CONNECT has moved through
    bool resend_pending_ = false; // session inflight entries not yet resent

    // Client limits from its CONNECT (v5).
    std::uint32_t client_max_packet_ = 0xFFFFFFFFu;
    std::uint16_t client_receive_max_ = 65535;
    std::uint16_t client_alias_max_ = 0;
    // Topic aliases: client -> broker (index = alias) and broker -> client;
    // allocated when first used (most clients use none).
    struct topic_aliases {
        std::vector<std::string> rx;
        std::unordered_map<std::string, std::uint16_t, string_hash, std::equal_to<>> tx;
    };
    std::unique_ptr<topic_aliases> aliases_;
    // QoS 1/2 publishes received and not yet fully acknowledged.
    std::uint32_t inbound_unacked_ = 0;
};

struct retained_entry {
    message_ptr msg;
};

struct routed {
    message_ptr msg;
    ticket_ptr ticket;
};

// A delivery chosen by shard 0 for one member of a shared subscription.
struct directed {
    message_ptr msg;
    ticket_ptr ticket;
    std::uint64_t session_id = 0;
    subscription_options opts;
};

struct shared_member {
    unsigned shard = 0;
    std::uint64_t session_id = 0;
    subscription_options opts;
};
struct shared_group {
    std::string filter; // internal
    std::vector<shared_member> members;
    std::size_t next = 0;
};

class shard {
public:
    shard(core& owner, unsigned index);

    ~shard();

    core& owner;
    const unsigned index;
    // This shard's copy of the options (reload() posts a new one).
    options opts;
    message_pool& pool;
    std::thread thread;

    subscription_trie<std::uint64_t, subscription_options> trie;
    std::unordered_map<std::uint64_t, std::shared_ptr<session>> sessions; // by id
    std::unordered_map<std::uint64_t, connection*> connections;           // by id
    // Retained messages by topic; an empty payload is a tombstone (see
    // message::retain_seq), swept by housekeeping.
    std::unordered_map<std::string, message_ptr> retained;
    // Shared groups (shard 0 only): key = group key + '\x1f' + filter.
    std::map<std::string, shared_group> shared;

    shard_counters counters;

    // Read buffer shared by every connection of the shard (see connection::run).
    std::vector<std::uint8_t> scratch;
    // Tickets collected while pumping a connection (reused, no allocation).
    std::vector<ticket_ptr> released_scratch;

    // Delivers `m` to this shard's subscribers and, unless it came from
    // another shard, queues it for the others.
    void route(const message_ptr& m, const ticket_ptr& t);
    void offer_taps(const message_ptr& m, const ticket_ptr& t);
    void deliver_local(const message_ptr& m, const ticket_ptr& t);
    // Queues `m` for `s` at QoS min(m.qos, qos) with the given RETAIN flag
    // and subscription identifiers.
    // `live`: a message being routed now (not a retained one sent on
    // subscribe), which may apply back-pressure to its publisher.
    void deliver_to(session& s, const message_ptr& m, const ticket_ptr& t, std::uint8_t qos,
                    bool retain_flag, std::span<const std::uint32_t> subscription_ids, bool live = true);

    // Back-pressure. When an online session's queue passes the high-water
    // mark, the publisher of the message that pushed it there stops being
    // read (pause) until the queue drains to the low-water mark (resume), so
    // fast publishers slow to the pace of their subscribers instead of
    // filling queues that must then drop QoS 0 or hold QoS 1/2 acks. A pause
    // lasts at most `max_pause`, so clients that only read while they can
    // write cannot deadlock with the broker.
    static constexpr std::chrono::seconds max_pause{2};
    std::size_t high_water() const noexcept { return std::max<std::size_t>(1, opts.max_queued_messages / 2); }
    std::size_t low_water() const noexcept { return high_water() / 2; }
    void apply_pressure(session& s, const message& m);
    void release_pressure(session& s);
    void pause_publisher(std::uint64_t session_id, bool pause);
    void deliver_shared(const message_ptr& m, const ticket_ptr& t);
    void deliver_retained(session& s, std::string_view filter, const subscription_options& o);
    // Drops this shard's hold on `t`; the last hold sends the acknowledgement.
    void release(const ticket_ptr& t);
    // The same from any thread (server::release_hold).
    void release_external(ticket_ptr t);
    void complete(const ticket_ptr& t);
    void schedule_flush();
    void flush();
    // flush()'s two parts: the outboxes posted, the dirty connections written.
    void send_outboxes();
    void write_dirty();
    // A message of server::publish(), on this shard: retained state, then route.
    void route_published(mutable_message_ptr m);
    // server::publish() calls posted to this shard and not yet routed. While
    // there are none, a publish() made on this shard's own thread is routed
    // at once: nothing published earlier can be overtaken.
    std::atomic<std::uint32_t> publishes_queued{0};
    // Messages routed by other shards (see server.cpp).
    void accept_batch(std::vector<routed>& batch);
    void drain_inbox();
    static constexpr std::size_t inbox_slice = 256;
    void add_dirty(std::shared_ptr<connection> c);

    // Session management on this shard.
    void install(std::shared_ptr<session> s);
    // Removes the session from this shard (subscriptions, maps) and returns it.
    std::shared_ptr<session> extract(std::uint64_t session_id);
    // Ends a session for good: drops its queue (releasing the holds on
    // publishers' acks), its subscriptions and, if `unregister`, its registry
    // entry.
    void end_session(std::shared_ptr<session> s, std::string_view why, bool unregister);
    void publish_will(session& s);
    void publish_will(will_spec w, std::uint64_t publisher);

    // Write-through of durable state (persistence.hpp); no-ops without a
    // store. A session's records exist while its expiry is > 0; a delivery's
    // while it is a QoS 1/2 message of a stored session.
    void persist_session(session& s, const ticket_ptr& t = nullptr);
    void unpersist_session(session& s);
    void persist_delivery(session& s, delivery& d, const ticket_ptr& t, std::uint16_t packet_id = 0,
                          bool released = false);
    void unpersist_delivery(session& s, delivery& d);
    void persist_retained(const message& m, const ticket_ptr& t);
    std::shared_ptr<void> take_hold(const ticket_ptr& t);
    // Sends `ack` (SUBACK/UNSUBACK) of `c` once the session record is
    // durable (persistence.hpp), or at once when nothing needs storing.
    void persist_then_send(connection& c, session& s, protocol::packet ack);

    void start_housekeeping();
    // Closes every connection (server shutdown) and stops the timers.
    void shutdown();

private:
    void housekeeping(clock::time_point now);
    std::vector<std::vector<routed>> outbox_;
    std::vector<std::vector<ticket_ptr>> ack_outbox_;
    std::vector<std::vector<directed>> directed_outbox_;
    // (session id, pause?) for publishers on other shards.
    std::vector<std::vector<std::pair<std::uint64_t, bool>>> pause_outbox_;
    ring_queue<routed> inbox_;
    bool draining_ = false;
    std::vector<std::shared_ptr<connection>> dirty_;
    std::vector<std::shared_ptr<connection>> pumping_; // dirty_ being pumped
    std::vector<std::pair<std::uint64_t, subscription_options>> matches_;
    std::unique_ptr<asio::steady_timer> tick_;
    bool flush_scheduled_ = false;
    std::string record_scratch_; // persistence.cpp encodes here
    std::mutex external_mutex_;
    std::vector<ticket_ptr> external_acks_;      // guarded by external_mutex_
    std::vector<ticket_ptr> external_draining_;  // shard thread only
    std::uint64_t swept_retain_seq_ = 0;
    clock::time_point last_sweep_{};

public:
    // Last, so that it is destroyed first: the handlers it still holds
    // (connections) reach into the members above when they die.
    asio::io_context ioc{1};
};

// Where the session of a client id lives.
struct registry_entry {
    unsigned shard = 0;
    std::uint64_t session_id = 0;
    bool busy = false; // a CONNECT for this id is being processed
};

struct core {
    core(options o, authenticator* a, publish_observer* p, state_store* st);

    options opts;
    std::mutex opts_mutex; // reload() vs readers of the reloadable fields
    authenticator* auth;
    publish_observer* observer;
    // message_tap i + 1 (its id) and its filters; fixed before start().
    struct tap_entry {
        message_tap* tap = nullptr;
        std::vector<std::string> filters;
    };
    std::vector<tap_entry> taps;
    state_store* store;
    // Loads sessions, their queues and retained messages (before start).
    void restore(state_store& st);
    // Declared before the shards: messages held by shards return to the
    // pools when the shards die.
    std::vector<std::unique_ptr<message_pool>> pools;
    std::vector<std::unique_ptr<shard>> shards;
    std::atomic<std::uint64_t> next_id{1};
    std::atomic<std::size_t> connection_count{0};
    std::atomic<bool> stopping{false};
    std::atomic<std::uint64_t> retain_seq{0};
    std::uint64_t next_retain_seq() noexcept { return retain_seq.fetch_add(1, std::memory_order_relaxed) + 1; }
    clock::time_point started_at = clock::now();

    std::mutex tenants_mutex;
    std::unordered_map<std::string, std::unique_ptr<tenant_usage>> tenants;
    tenant_usage& usage_of(const std::string& tenant);

    std::mutex registry_mutex;
    std::unordered_map<std::string, registry_entry> registry; // key: tenant '\0' client id

    topic::limits topic_limits() const noexcept {
        return {65535, opts.max_topic_levels};
    }
    // Adds the shared-subscription member (on shard 0).
    void add_shared(std::string group_key, std::string filter, shared_member m);
    void remove_shared(std::string group_key, std::string filter, std::uint64_t session_id);

    void publish_sys(); // on shard 0
    // The shards' counters added up (any thread; retained from shard 0's
    // housekeeping count).
    sys_stats counters_snapshot() const;
    sys_loads loads;
    clock::time_point last_sys = clock::now();
};

std::string registry_key(const client_identity& who, std::string_view client_id);

} // namespace pulsegate::broker::detail
