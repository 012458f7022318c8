#pragma once
// The MQTT broker: listeners, shards, sessions. See DESIGN.md (MQTT
// contract, Threads and performance) for the model; broker.cpp for how the
// shards divide the work.
//
// Lifetime: construct, start(), ... stop(), join() (or destroy, which does
// both). start() throws std::system_error when a listener cannot bind; it is
// a startup error for the daemon to report. All other methods are thread
// safe.

#include "broker/options.hpp"
#include "broker/sys_topics.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pulsegate::broker {

class authenticator;
struct client_identity;
class publish_observer;
class message_tap;
class state_store;
class stream;

class server {
public:
    // `auth` and `observer` may be null (no auth hook: anonymous rules from
    // options only; no observer: nothing sees accepted publishes). They must
    // outlive the server.
    // `store` may be null (nothing survives a restart); when set, start()
    // restores sessions, queued and retained messages from it first.
    explicit server(options opts, authenticator* auth = nullptr, publish_observer* observer = nullptr,
                    state_store* store = nullptr);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Binds every listener and starts the shard threads.
    void start();

    // The bound addresses, in the order of options::listen (useful with port 0).
    std::vector<boost::asio::ip::tcp::endpoint> local_endpoints() const;
    // The bound TLS listeners, in the order of options::tls_listen (none
    // without options::tls).
    std::vector<boost::asio::ip::tcp::endpoint> tls_endpoints() const;

    // Serves an MQTT connection that arrived by another way (MQTT over
    // WebSocket on the HTTP port). Picks a shard and calls `make` on its
    // thread with its io_context; `make` returns the connection's stream,
    // running on that io_context. Any thread; returns at once. False (and
    // `make` is not called) when the server is not running.
    using stream_factory = std::function<std::unique_ptr<stream>(boost::asio::io_context&)>;
    bool adopt(stream_factory make);

    // Stops accepting, sends wills as the spec says for a server shutdown,
    // closes every connection (v5: DISCONNECT 0x8B) and stops the shards.
    void stop();
    // Waits until the shard threads have ended.
    void join();

    // Applies the options that can change at run time (limits, keep alive,
    // anonymous access); listeners and shard count stay as started.
    void reload(const options& opts);

    // Releases a hold taken through ack_hold::take() (publish_observer), from
    // any thread. `ok` false: what the hold waited for failed, and the v5
    // publisher gets 0x97 (quota exceeded) instead of success.
    void release_hold(std::shared_ptr<void> token, bool ok);

    // Disconnects every connected client whose identity `match` selects
    // (v5: DISCONNECT 0x98 administrative action with `reason`), e.g. the
    // clients of a device whose secret was rotated. Their wills are sent and
    // their sessions stay, as for any disconnect. Any thread; returns at
    // once (each shard acts on its own thread). `match` runs on the shard
    // threads, possibly concurrently.
    void disconnect_if(std::function<bool(const client_identity&)> match, std::string reason);

    // Publishes a message of the server itself (e.g. alert events) on an
    // internal topic, as if a client had: retained messages are stored and
    // persisted, subscribers get it at min(qos, their QoS); no ACL, no
    // observer. Any thread; returns at once. Topic and payload are taken
    // as they are (the caller makes them valid: no wildcards).
    // `from_tap`: the id of the message_tap on whose behalf it is published
    // (a bridge importing a message), which then does not see it.
    void publish(std::string topic, std::string payload, std::uint8_t qos, bool retain, unsigned from_tap = 0);

    // Adds a tap (see observer.hpp) for messages whose internal topic matches
    // one of `filters` (valid, not shared; the caller checks them). Before
    // start(); returns its id (1, 2, ...) for publish(). `tap` must outlive
    // the server.
    unsigned add_tap(message_tap& tap, std::vector<std::string> filters);

    // Counters of every shard (connections, messages, bytes, ...), as in
    // $SYS; any thread.
    sys_stats stats() const;

    // Shards (threads), fixed at construction.
    unsigned shard_count() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace pulsegate::broker
