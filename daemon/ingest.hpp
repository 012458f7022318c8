#pragma once
// Ingest: the broker's publish observer. A publish on a device's telemetry
// topic (internal `t/{tenant}/d/{device}/telemetry`) is decoded on the
// publisher's shard, appended to storage and handed to the rules engine; an
// invalid payload is refused (v5 0x99), counted and logged, and changes
// nothing. With durability "commit" the publisher's acknowledgement waits
// for the commit (ack_hold). A heartbeat (`.../heartbeat`, any payload)
// only tells the rules engine the device is alive.
//
// Also the adapter that keeps the broker's durable state (persistent
// sessions, queued and retained messages) in the same LMDB environment.

#include "broker/observer.hpp"
#include "broker/persistence.hpp"
#include "engine/rules_engine.hpp"
#include "engine/telemetry_decoder.hpp"
#include "storage/lmdb_store.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace pulsegate::broker {
class server;
}

namespace pulsegate::daemon {

// `t/{tenant}/d/{device}/telemetry` and `.../heartbeat` -> (tenant, device).
struct device_topic {
    enum class kind : std::uint8_t { telemetry, heartbeat };
    std::string_view tenant;
    std::string_view device;
    kind what = kind::telemetry;
};
std::optional<device_topic> parse_device_topic(std::string_view internal_topic) noexcept;

struct ingest_stats {
    std::uint64_t readings = 0;
    std::uint64_t points = 0;
    std::uint64_t rejected = 0;   // invalid payloads, all reasons
    std::uint64_t overloaded = 0; // storage queue full (v5 0x97)
};

class ingest final : public broker::publish_observer {
public:
    // `durable`: hold acknowledgements until the commit (durability "commit").
    ingest(storage::lmdb_store& store, engine::telemetry_limits limits, bool durable);

    // Before the broker starts: one decoder per shard; `server` releases the
    // holds of refused appends. `rules` (may be null) sees every accepted
    // reading and heartbeat.
    void attach(broker::server& server, engine::rules_engine* rules = nullptr);
    // Before the broker starts: `f` sees every accepted reading on the shard
    // that decoded it (the web UI's live feed); it must not block.
    void set_reading_listener(std::function<void(const storage::reading&)> f) { listener_ = std::move(f); }

    broker::protocol::reason_code on_publish(const broker::message_ptr& m, const broker::ack_hold& hold) override;
    // Hands the shard's readings to the rules engine in one go.
    void on_batch_end(unsigned shard) override;
    void on_batch_sent(unsigned shard) override;

    ingest_stats stats() const noexcept;

private:
    void note_rejection(std::string_view topic, const boost::system::error_code& ec, std::string_view detail);

    storage::lmdb_store& store_;
    engine::telemetry_limits limits_;
    bool durable_;
    broker::server* server_ = nullptr;
    engine::rules_engine* rules_ = nullptr;
    std::function<void(const storage::reading&)> listener_;
    std::vector<std::unique_ptr<engine::telemetry_decoder>> decoders_; // by shard
    std::atomic<std::uint64_t> readings_{0}, points_{0}, rejected_{0}, overloaded_{0};
    // Rejections are logged at most `log_burst` per second (a device
    // misbehaving in a loop must not flood the journal); all are counted.
    static constexpr unsigned log_burst = 10;
    std::atomic<std::int64_t> log_window_{0};
    std::atomic<unsigned> logged_in_window_{0};
};

class durable_broker_state final : public broker::state_store {
public:
    durable_broker_state(storage::lmdb_store& store, bool durable) : store_(store), durable_(durable) {}
    void attach(broker::server& server) { server_ = &server; }
    bool holds_acks() const noexcept override { return durable_; }

    void put(broker::durable_table t, std::string_view key, std::string_view value,
             std::shared_ptr<void> hold) override;
    void erase(broker::durable_table t, std::string_view key, std::shared_ptr<void> hold) override;
    void load(broker::durable_table t,
              const std::function<void(std::string_view key, std::string_view value)>& f) override;

private:
    void refused(std::shared_ptr<void> hold);
    storage::lmdb_store& store_;
    bool durable_;
    broker::server* server_ = nullptr;
};

} // namespace pulsegate::daemon
