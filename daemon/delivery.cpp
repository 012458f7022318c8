#include "daemon/delivery.hpp"

#include "common/thread.hpp"
#include "common/time.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <stdexcept>

namespace pulsegate::daemon {

namespace {

adapters::target_guard make_guard(const delivery_config& cfg) {
    std::vector<adapters::cidr> allowed;
    for (const auto& text : cfg.allow_private_targets) {
        std::string why;
        auto c = adapters::parse_cidr(text, &why);
        if (!c)
            throw std::runtime_error("[delivery] allow_private_targets: " + why);
        allowed.push_back(*c);
    }
    return adapters::target_guard(std::move(allowed));
}

// PULSEGATE_SECRETS_KEY (64 hex digits) when set, so that the data dir alone
// does not open the secrets; otherwise a key derived from secret.key.
storage::state::secret_box make_box(const engine::server_key& key) {
    if (const char* hex = std::getenv("PULSEGATE_SECRETS_KEY"); hex != nullptr && *hex != '\0') {
        auto box = storage::state::secret_box::from_hex(hex);
        if (!box)
            throw std::runtime_error("PULSEGATE_SECRETS_KEY: " + box.error().message);
        return *box;
    }
    return storage::state::secret_box::derived_from(key);
}

} // namespace

delivery::delivery(storage::state::database& db, const engine::server_key& key, const delivery_config& cfg)
    : guard_(make_guard(cfg)), box_(make_box(key)), webhook_(guard_), email_(guard_), snmp_(guard_), mqtt_(guard_),
      router_(db, engine::router_options{.max_attempts = cfg.max_attempts}), digest_(db, box_, cfg.max_attempts) {
    engine::outbox_options o;
    o.workers = static_cast<std::size_t>(cfg.workers);
    o.per_integration = static_cast<std::size_t>(cfg.per_integration_concurrency);
    o.backoff_initial_ms = cfg.backoff_initial_ms;
    o.backoff_max_ms = std::max(cfg.backoff_max_ms, cfg.backoff_initial_ms);
    o.breaker_threshold = static_cast<std::size_t>(cfg.breaker_threshold);
    o.breaker_cooldown_ms = cfg.breaker_cooldown_s * 1000;
    outbox_ = std::make_unique<engine::outbox>(
        db, box_, o,
        std::map<std::string, adapters::sender*, std::less<>>{
            {"webhook", &webhook_}, {"email", &email_}, {"snmp", &snmp_}, {"mqtt", &mqtt_}});
    if (auto r = router_.reload(); !r)
        throw std::runtime_error("reading delivery routes: " + r.error().message);
}

delivery::~delivery() { stop(); }

void delivery::start() {
    outbox_->start();
    digest_stop_ = false;
    digest_thread_ = std::thread([this] {
        common::name_this_thread("pg-digest");
        std::unique_lock lock(digest_mutex_);
        while (!digest_stop_) {
            lock.unlock();
            if (auto n = digest_.run_due(common::now_ms()); !n)
                spdlog::warn("digest: the due digests were not queued (next try in a minute) error={}",
                             n.error().message);
            else if (*n > 0) {
                spdlog::info("digest: queued jobs={}", *n);
                outbox_->notify();
            }
            lock.lock();
            digest_wake_.wait_for(lock, std::chrono::minutes(1), [this] { return digest_stop_; });
        }
    });
}

void delivery::stop() {
    if (digest_thread_.joinable()) {
        {
            std::lock_guard lock(digest_mutex_);
            digest_stop_ = true;
        }
        digest_wake_.notify_all();
        digest_thread_.join();
    }
    if (outbox_)
        outbox_->stop();
}

} // namespace pulsegate::daemon
