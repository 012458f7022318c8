#pragma once
// The daemon's HTTP listener ([http] listen) as far as it goes today:
// /healthz, /readyz (storage writable), /metrics (broker, ingest and storage
// counters in Prometheus format) and /api/v1/openapi.json. The REST
// resources (devices, auth, tokens, ...) join the same router with issue 4.

#include "webui/http_server.hpp"
#include "webui/metrics.hpp"
#include "webui/readiness.hpp"
#include "webui/router.hpp"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace pulsegate::broker {
class server;
}
namespace pulsegate::storage {
class lmdb_store;
}

namespace pulsegate::daemon {

class ingest;

class observability {
public:
    // `storage_ok` is kept by the commit reporter: false while the last
    // commit failed (storage full).
    observability(broker::server& server, storage::lmdb_store& store, const ingest& telemetry,
                  const std::atomic<bool>& storage_ok, std::string listen);
    ~observability();

    // Binds [http] listen; throws (naming the address) when it cannot.
    void start();
    void stop();
    std::string address() const;

private:
    webui::metrics metrics_;
    webui::readiness readiness_;
    webui::router router_;
    std::vector<webui::callback_registration> series_;
    std::unique_ptr<webui::http_server> http_;
};

} // namespace pulsegate::daemon
