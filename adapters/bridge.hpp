#pragma once
// The upstream bridge (DESIGN.md, Scale-out): one [[bridge]] section, a
// connection to a remote MQTT broker with Eclipse Paho C++.
//
// Forward: the broker hands over every local message matching a forward
// rule (offer(), from a shard thread, never blocking). The bridge maps its
// topic (remote = prefix + internal topic without `strip`), appends it to a
// durable store-and-forward queue (a bridge_queue: the daemon gives it
// storage::forward_queue, one LMDB
// environment per bridge) and only then releases the publisher's
// acknowledgement. A worker thread sends the queue in order while the
// uplink is up, keeping up to max_inflight messages in flight, and removes
// a message once the remote acknowledged it (PUBACK/PUBCOMP; QoS 0: written).
// After a reconnect it sends again from the oldest unacknowledged message,
// so a message in flight when the link dropped may arrive twice (QoS 1 is
// at least once); nothing is skipped and the order is kept.
//
// Bounds (what they drop is counted per reason, logged and reported):
//   max_messages  the oldest queued messages give way to new ones;
//   max_age       messages queued longer are dropped, sent or not;
//   full          the queue's map (queue_max_mb) cannot take the batch;
//   overflow      the worker fell 100,000 messages / 64 MiB behind (a
//                 stalled disk): the message is not queued and a v5
//                 publisher gets 0x97 in its PUBACK.
//
// Import: the bridge subscribes to each import rule's remote filter and
// publishes what arrives locally (local = prefix + remote topic without
// `strip`) through a hook that marks the message as the bridge's own, so the
// broker never offers it back to this bridge (loop prevention).
//
// Connection: the worker connects, and after a failure or a loss retries
// after 1 s, doubling up to reconnect_max_s. Imports are subscribed again
// on every connect.

#include "common/forward_record.hpp"

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace mqtt {
class async_client;
class token;
} // namespace mqtt

namespace pulsegate::adapters {

// A forward or import rule: topics matching `filter` are renamed to
// prefix + (topic without the leading `strip`, when it starts with it).
struct bridge_rule {
    std::string filter;
    std::string strip;
    std::string prefix;
    std::uint8_t qos = 1; // forward: the QoS sent upstream; import: the subscription's
    friend bool operator==(const bridge_rule&, const bridge_rule&) = default;
};

struct bridge_options {
    std::string name;      // [A-Za-z0-9_-]+, names the queue directory and the metrics
    std::string url;       // mqtt://, mqtts://, ws://, wss:// host[:port][/path]
    std::string client_id; // default "pulsegate-bridge-<name>"
    std::string username;
    std::string password;
    std::string password_file; // the password's file, read at start (daemon/bridges.hpp)
    std::string tls_ca;    // mqtts/wss: trust this CA (PEM) instead of the system's
    std::string tls_cert;  // client certificate (PEM) and its key
    std::string tls_key;
    bool tls_insecure = false; // skip server certificate verification (labs)
    unsigned mqtt_version = 4; // 4 (3.1.1) or 5
    bool clean_start = false;  // false: the remote keeps the import subscriptions' session
    std::uint32_t session_expiry_s = 0; // v5, with clean_start false
    std::uint16_t keepalive_s = 60;
    std::vector<bridge_rule> forward;
    std::vector<bridge_rule> import;
    std::uint64_t queue_max_messages = 1000000;
    std::uint64_t queue_max_age_s = 604800;
    std::uint64_t queue_max_mb = 1024;
    std::uint32_t max_inflight = 100;
    std::uint32_t reconnect_max_s = 30;
    friend bool operator==(const bridge_options&, const bridge_options&) = default;
};

// The durable FIFO the bridge sends from, owned by the bridge and used by
// its worker thread only (adapters/ sees no storage types: the daemon
// supplies storage::forward_queue behind this). See storage/forward_queue.hpp
// for the semantics of each call.
class bridge_queue {
public:
    using item = common::forward_item;
    using message = common::queued_message;
    using pushed = common::push_result;
    virtual ~bridge_queue() = default;
    virtual boost::system::result<pushed> push(std::span<const item> items) = 0;
    virtual boost::system::error_code read(std::uint64_t from, std::size_t max, std::vector<message>& out) = 0;
    virtual boost::system::error_code remove_through(std::uint64_t seq) = 0;
    virtual boost::system::result<std::uint64_t> drop_older_than(std::int64_t cutoff_ms) = 0;
    virtual std::uint64_t size() const = 0;
    virtual std::int64_t oldest_ms() const = 0; // 0 when empty
};

// "" when valid, else what is wrong, naming the key (config checks).
std::string check_bridge_url(std::string_view url);
// The Paho server URI for a bridge URL (tcp://, ssl://, ws://, wss://, with
// the default port added).
std::string paho_uri(std::string_view url);
// prefix + (topic without `strip`).
std::string remap(const bridge_rule& r, std::string_view topic);

// What the bridge needs from the rest of pulsegate (the daemon wires these).
struct bridge_hooks {
    // Publishes an imported message locally as the bridge's own (any thread).
    std::function<void(std::string topic, std::string payload, std::uint8_t qos, bool retain)> publish_local;
    // Releases an acknowledgement offer() was given: ok false = not stored.
    std::function<void(std::shared_ptr<void> hold, bool ok)> release;
    // MQTT filter matching and topic name validity (the broker's rules).
    std::function<bool(std::string_view filter, std::string_view topic)> matches;
    std::function<bool(std::string_view topic)> valid_name;
    // Told when the connection comes up or goes down (worker thread).
    std::function<void(bool connected)> on_state;
};

struct bridge_stats {
    bool connected = false;
    std::uint64_t queued = 0;
    std::int64_t oldest_age_ms = 0; // 0 when empty
    std::uint64_t in_flight = 0;
    std::uint64_t sent = 0;         // acknowledged by the remote
    std::uint64_t imported = 0;
    std::uint64_t connects = 0;
    std::uint64_t dropped_max_messages = 0;
    std::uint64_t dropped_max_age = 0;
    std::uint64_t dropped_full = 0;
    std::uint64_t dropped_overflow = 0;
    std::string last_error; // why the last connect failed or the link dropped
    std::uint64_t dropped() const noexcept {
        return dropped_max_messages + dropped_max_age + dropped_full + dropped_overflow;
    }
};

class bridge {
public:
    // `queue` holds what a previous run left queued.
    bridge(bridge_options opts, std::unique_ptr<bridge_queue> queue, bridge_hooks hooks);
    ~bridge(); // stop()
    bridge(const bridge&) = delete;
    bridge& operator=(const bridge&) = delete;

    void start();
    // Stores what was offered, disconnects, ends the worker.
    void stop();

    // A local message that matched forward rule `rule` (any thread; never
    // blocks). `hold` (may be null) is released once it is stored.
    void offer(unsigned rule, std::string_view topic, std::string_view payload, std::shared_ptr<void> hold);

    const bridge_options& options() const noexcept { return opts_; }
    bridge_stats stats() const;

private:
    struct pending {
        std::string bytes; // remote topic, then payload, per entry
        struct entry {
            std::size_t topic_len = 0;
            std::size_t payload_len = 0;
            std::int64_t queued_ms = 0;
            std::uint8_t qos = 0;
        };
        std::vector<entry> entries;
        std::vector<std::shared_ptr<void>> holds; // one per entry, may be null
        void clear() {
            bytes.clear();
            entries.clear();
            holds.clear();
        }
    };
    enum class event : unsigned char { connected, connect_failed, lost, publish_failed };
    struct listener;

    void run();
    void store(pending& batch);
    void handle(event ev, const std::string& why);
    void on_acks(std::vector<std::uint64_t>& acks);
    void fill_window();
    void connect();
    void subscribe_imports();
    void imported(std::string_view topic, std::string payload, std::uint8_t qos, bool retain);
    // From Paho's threads.
    void ack(const mqtt::token& t);
    void signal(event ev, std::string why = {});
    void log_drops();

    bridge_options opts_;
    bridge_hooks hooks_;
    std::unique_ptr<bridge_queue> queue_;
    std::unique_ptr<mqtt::async_client> client_;
    std::unique_ptr<listener> listener_;

    // Shared with offer() and the Paho callbacks.
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    pending in_;
    std::vector<std::uint64_t> acks_; // sequences the remote acknowledged
    std::vector<std::pair<event, std::string>> events_;
    bool stop_ = false;

    // Worker thread only.
    struct in_flight {
        std::uint64_t seq = 0;
        bool acked = false;
    };
    std::deque<in_flight> inflight_;
    std::uint64_t next_send_ = 0; // 0: from the oldest queued message
    bool connected_ = false;
    bool connecting_ = false;
    std::chrono::steady_clock::time_point next_connect_{};
    std::chrono::seconds backoff_{0};
    std::vector<bridge_queue::message> sendbuf_;
    std::chrono::steady_clock::time_point last_drop_log_{};
    std::uint64_t logged_drops_ = 0;

    // Read by stats() from any thread.
    std::atomic<bool> up_{false};
    std::atomic<std::uint64_t> queued_{0}, oldest_ms_{0}, inflight_count_{0}, sent_{0}, imported_{0}, connects_{0};
    std::atomic<std::uint64_t> dropped_max_messages_{0}, dropped_max_age_{0}, dropped_full_{0}, dropped_overflow_{0};
    std::string last_error_; // under mutex_

    std::thread worker_;
};

} // namespace pulsegate::adapters
