#pragma once
// The daemon's HTTP listener ([http] listen): /healthz, /readyz (storage
// writable, MQTT listening), /metrics (broker, identity, ingest and storage
// counters in Prometheus format), /api/v1/openapi.json, the REST API
// (auth, devices, telemetry, tokens, operator routes), and the web UI (/ and
// /assets/{name}, webui/static_assets.hpp).

#include "engine/identity.hpp"
#include "webui/auth.hpp"
#include "webui/http_server.hpp"
#include "webui/live_feed.hpp"
#include "webui/metrics.hpp"
#include "webui/readiness.hpp"
#include "webui/router.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pulsegate::broker {
class server;
}
namespace pulsegate::common {
class tls_source;
}
namespace pulsegate::storage {
class lmdb_store;
namespace state {
class database;
}
}

namespace pulsegate::engine {
class rules_engine;
}

namespace pulsegate::daemon {

class ingest;
class delivery;
class bridges;
class mqtt_identity;

struct http_options {
    std::string listen = "127.0.0.1:8080";
    unsigned threads = 2;
    webui::auth_options auth{};
    // The web UI's live feed, served at /api/v1/ws; null: none (426 there).
    webui::live_feed* live_feed = nullptr;
    std::string ui_dir; // [http] ui_dir: "" serves the UI built in
    // MQTT over WebSocket at /mqtt: the broker's [mqtt] max_packet_size.
    std::uint32_t mqtt_max_packet_size = 1048576;
    // HTTPS with this certificate; null: plain HTTP.
    const common::tls_source* tls = nullptr;
    // [quotas] devices, kept current by SIGHUP; null: no device quota.
    const std::atomic<std::int64_t>* device_quota = nullptr;
    // The upstream bridges, for /metrics; null: none.
    const bridges* uplinks = nullptr;
};

class observability {
public:
    // `storage_ok` is kept by the commit reporter: false while the last
    // commit failed (storage full).
    // Everything passed must outlive this; `identity` tells MQTT about
    // identity changes made through the API.
    observability(broker::server& server, storage::lmdb_store& store, const ingest& telemetry,
                  const std::atomic<bool>& storage_ok, storage::state::database& db, const engine::server_key& key,
                  mqtt_identity& identity, engine::rules_engine& rules, delivery& alerts_out, http_options opts);
    ~observability();

    // Binds [http] listen; throws (naming the address) when it cannot.
    void start();
    void stop();
    std::string address() const;

private:
    void bridge_metrics(const bridges& uplinks);
    webui::metrics metrics_;
    webui::readiness readiness_;
    webui::router router_;
    std::unique_ptr<webui::auth> auth_;
    std::unique_ptr<webui::identity_hooks> hooks_;
    std::vector<webui::callback_registration> series_;
    std::unique_ptr<webui::http_server> http_;
};

} // namespace pulsegate::daemon
