#pragma once
// MQTT identity: the broker's authenticator, backed by the state database
// (DESIGN.md, MQTT contract: identity and ACL).
//
//   user name            password               identity
//   {tenant}/{device}    the device secret      device, mounted in t/{tenant}/
//   {tenant}/api         an API token of it     integrator, mounted in t/{tenant}/
//   {user}               the user's password    operator (operator roles only), internal names
//   (none)               -                      anonymous in [auth] anonymous_tenant, if allowed
//
// Shards never wait: a verdict in the credential cache (engine::
// credential_cache, positive and negative) answers at once; anything else
// goes to a small worker pool that reads the database and verifies the
// credential (argon2id for operators), with a bound on waiting checks, past
// which a CONNECT is refused with 0x89 server busy. A wrong password is
// cached as such for a few seconds, so a storm of bad CONNECTs costs the
// database and argon2 one check per (user name, password), not one each.
//
// Refusals (connect, publish, subscribe) are counted and recorded in the
// rejected-events table by a background thread, in batches, bounded in
// memory (beyond the bound they are only counted). The same thread records
// when each device last connected (devices.last_seen).
//
// It is also the REST layer's identity_hooks: a device, token, tenant or
// user change forgets cached verdicts and disconnects the clients it let in.

#include "broker/acl.hpp"
#include "broker/auth.hpp"
#include "engine/identity.hpp"
#include "storage/state/database.hpp"
#include "storage/state/device_repository.hpp"
#include "webui/identity_hooks.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace boost::asio {
class thread_pool;
}

namespace pulsegate::broker {
class server;
}

namespace pulsegate::daemon {

struct mqtt_identity_options {
    bool allow_anonymous = false;
    std::string anonymous_tenant = "default"; // empty: anonymous clients see internal names
    std::vector<broker::acl_rule> acl;        // static [[acl]] rules
    unsigned workers = 2;                     // credential checks in parallel
    std::size_t max_pending = 1024;           // checks waiting for a worker; more: 0x89
    std::size_t max_queued_rejections = 10000;
    engine::credential_cache_options cache{};
};

struct mqtt_identity_stats {
    std::uint64_t connects_allowed = 0;
    std::uint64_t connects_refused = 0;  // bad credentials, disabled, unknown
    std::uint64_t connects_busy = 0;     // refused: too many checks waiting
    std::uint64_t publishes_denied = 0;  // incl. wills
    std::uint64_t subscribes_denied = 0;
    std::uint64_t rejections_dropped = 0; // counted but not recorded (queue full or write failed)
    engine::credential_cache::stats cache{};
};

class mqtt_identity final : public broker::authenticator, public webui::identity_hooks {
public:
    mqtt_identity(storage::state::database& db, const engine::server_key& key, mqtt_identity_options opts);
    ~mqtt_identity() override; // stop()
    mqtt_identity(const mqtt_identity&) = delete;
    mqtt_identity& operator=(const mqtt_identity&) = delete;

    // The broker whose clients the hooks disconnect (it is constructed with
    // this authenticator, so it comes after). Before any hook can run.
    void attach(broker::server& server) noexcept { server_ = &server; }
    // Anonymous access can change at run time (SIGHUP).
    void set_anonymous(bool allow, std::string tenant);
    // Waits for checks in progress and writes the last rejections.
    void stop();

    mqtt_identity_stats stats() const;

    // broker::authenticator
    std::optional<broker::auth_result> authenticate(const broker::connect_info& info,
                                                    std::shared_ptr<broker::auth_completion> done) override;
    bool may_publish(const broker::client_identity& who, std::string_view topic) override;
    bool may_subscribe(const broker::client_identity& who, std::string_view filter) override;
    void denied(const broker::client_identity& who, std::string_view topic_or_filter, bool subscribe) override;

    // webui::identity_hooks
    void device_changed(std::string_view tenant, std::string_view device) override;
    void token_revoked(const std::optional<std::string_view>& tenant, std::string_view public_id) override;
    void tenant_changed(std::string_view tenant) override;
    void user_changed(std::string_view name) override;

private:
    struct rejection;
    // The database's verdict (worker thread): an identity or a reason code.
    broker::auth_result check(const std::string& username, const std::string& password, std::uint64_t generation);
    // A verified client certificate naming "tenant/device": the device, if it exists and is enabled.
    broker::auth_result check_certificate(const std::string& name);
    // Runs `work` on the check pool and completes `done` with its answer;
    // server_busy at once when max_pending checks wait already.
    std::optional<broker::auth_result> defer(std::function<broker::auth_result()> work,
                                             std::shared_ptr<broker::auth_completion> done);
    broker::client_identity to_client_identity(const engine::verified_identity& v, std::string_view password) const;
    void record(rejection r);
    void seen(const broker::client_identity& who);
    void writer_loop();

    storage::state::database& db_;
    const engine::server_key& key_;
    mqtt_identity_options opts_;
    broker::acl acl_;
    engine::credential_cache cache_;
    broker::server* server_ = nullptr;

    mutable std::mutex anon_mutex_;
    bool allow_anonymous_;
    std::string anonymous_tenant_;

    std::unique_ptr<boost::asio::thread_pool> pool_;
    std::atomic<std::size_t> pending_{0};

    std::mutex rej_mutex_;
    std::condition_variable rej_cv_;
    std::vector<rejection> rejections_;
    std::vector<storage::state::device_seen> seen_;
    bool stopping_ = false;
    std::thread writer_;

    std::atomic<std::uint64_t> allowed_{0}, refused_{0}, busy_{0}, pub_denied_{0}, sub_denied_{0}, dropped_{0};
};

} // namespace pulsegate::daemon
