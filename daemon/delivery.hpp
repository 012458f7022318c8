#pragma once
// Alert delivery as the daemon wires it (DESIGN.md, Delivery): the SSRF
// guard from [delivery] allow_private_targets, the secrets key, one sender
// per integration type, the router the rules engine writes jobs with, and
// the outbox that drains them.
//
// Lifetime: construct (throws std::runtime_error naming a bad setting),
// router().reload() before the rules engine starts, start() after it,
// stop() before the database closes.

#include "adapters/email_sender.hpp"
#include "adapters/mqtt_sender.hpp"
#include "adapters/snmp_sender.hpp"
#include "adapters/target_guard.hpp"
#include "adapters/webhook_sender.hpp"
#include "daemon/config.hpp"
#include "engine/digest.hpp"
#include "engine/identity.hpp"
#include "engine/outbox.hpp"
#include "engine/router.hpp"
#include "storage/state/secret_box.hpp"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace pulsegate::daemon {

class delivery {
public:
    delivery(storage::state::database& db, const engine::server_key& key, const delivery_config& cfg);
    ~delivery();

    void start();
    void stop();

    engine::job_router& router() noexcept { return router_; }
    engine::outbox& outbox() noexcept { return *outbox_; }
    const storage::state::secret_box& secrets() const noexcept { return box_; }
    const adapters::target_guard& guard() const noexcept { return guard_; }
    engine::digest_service& digest() noexcept { return digest_; }

private:
    adapters::target_guard guard_;
    storage::state::secret_box box_;
    adapters::webhook_sender webhook_;
    adapters::email_sender email_;
    adapters::snmp_sender snmp_;
    adapters::mqtt_sender mqtt_;
    engine::job_router router_;
    std::unique_ptr<engine::outbox> outbox_;
    engine::digest_service digest_;
    std::mutex digest_mutex_;
    std::condition_variable digest_wake_;
    bool digest_stop_ = false;
    std::thread digest_thread_;
};

} // namespace pulsegate::daemon
