#pragma once
// The live feed of the web UI: GET /api/v1/ws (DESIGN.md, Web UI and REST
// API), a WebSocket a signed-in page keeps open to get, without polling,
// its tenant's alert events and the readings of the devices it shows.
//
// Access: the session cookie (or a tenant API token as Bearer, for
// non-browser clients) with tenant_read rights; a request that carries an
// Origin header must come from the page's own origin (Origin's host equals
// Host), so another site cannot open the feed with the user's cookie.
// Operators have no tenant feed (403).
//
// Client -> server, JSON text:
//   {"op": "subscribe", "alerts": true}      the tenant's alert events
//   {"op": "subscribe", "device": "s1"}      a device's readings (one of the
//                                             tenant's; at most 50 at once)
//   {"op": "unsubscribe", "alerts": true} / {"op": "unsubscribe", "device": "s1"}
// Server -> client:
//   {"type": "hello", "tenant", "user"}
//   {"type": "subscribed" | "unsubscribed", "alerts": true | "device": id}
//   {"type": "alert", "event": {"event", "tenant", "at", "alert": {...}}}
//   {"type": "telemetry", "device", "ts", "values": {"temp": 21.5, ...}}
//   {"type": "resync", "reason"}  the client fell behind (more than
//       queue_limit messages waiting): what was queued was dropped; reload
//       what is shown over REST
//   {"type": "error", "message"}  a bad message, named; the feed goes on
//
// Back-pressure: each client has its own bounded queue; a slow browser
// loses its backlog (and is told so), it never slows ingest or the rules.
//
// Threads: on_alert_event() is the rules engine's live sink (the thread
// holding the evaluator); on_reading() runs on the shard that decoded the
// reading and costs one atomic load when nobody watches a device; both
// only format and queue, under a short lock. Sessions run on HTTP threads.

#include "engine/alert_event.hpp"
#include "storage/lmdb_store.hpp"
#include "storage/state/database.hpp"
#include "webui/auth.hpp"
#include "webui/websocket.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>

namespace pulsegate::webui {

struct live_feed_options {
    std::size_t queue_limit = 256;            // messages waiting per client before a resync
    std::size_t max_devices_per_client = 50;
    std::size_t max_clients = 256;            // more: 503
};

// GET /api/v1/ws without an upgrade: 426 upgrade_required (the upgrade
// itself goes to live_feed::acceptor before routing).
void add_live_feed_route(router& r);

class live_feed final : public engine::alert_event_sink {
public:
    explicit live_feed(storage::state::database& db, live_feed_options o = {});
    ~live_feed() override;
    live_feed(const live_feed&) = delete;
    live_feed& operator=(const live_feed&) = delete;

    // The acceptor of GET /api/v1/ws (http_server_options::websockets);
    // `a` must outlive the server.
    websocket_acceptor acceptor(auth& a);

    void on_alert_event(const engine::alert_event& e) override;
    void on_reading(const storage::reading& r);

    struct stats {
        std::size_t clients = 0;
        std::uint64_t messages = 0; // queued for clients
        std::uint64_t resyncs = 0;  // backlogs dropped
    };
    stats counts() const;

private:
    class client;
    friend class client;

    void add(client* c);
    void remove(client* c) noexcept;
    // Subscription changes; false when the device limit is reached.
    bool watch_device(client* c, const std::string& device);
    void unwatch_device(client* c, const std::string& device);
    void watch_alerts(client* c, bool on);
    void deliver(const std::set<client*>& to, const std::string& message);

    storage::state::database* db_;
    live_feed_options opts_;
    mutable std::mutex mutex_;
    std::set<client*> clients_;
    std::map<std::string, std::set<client*>, std::less<>> alert_watchers_;    // by tenant
    std::map<std::pair<std::string, std::string>, std::set<client*>> device_watchers_; // (tenant, device)
    std::atomic<std::size_t> alert_watch_count_{0};
    std::atomic<std::size_t> device_watch_count_{0};
    std::atomic<std::uint64_t> messages_{0};
    std::atomic<std::uint64_t> resyncs_{0};
};

} // namespace pulsegate::webui
