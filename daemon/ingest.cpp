#include "daemon/ingest.hpp"

#include "broker/server.hpp"
#include "daemon/log.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

namespace pulsegate::daemon {

using broker::protocol::reason_code;

std::optional<device_topic> parse_device_topic(std::string_view t) noexcept {
    constexpr std::string_view root = "t/", devices = "/d/", telemetry = "/telemetry", heartbeat = "/heartbeat";
    if (!t.starts_with(root)) return std::nullopt;
    device_topic out;
    if (t.ends_with(telemetry)) {
        t.remove_suffix(telemetry.size());
    } else if (t.ends_with(heartbeat)) {
        t.remove_suffix(heartbeat.size());
        out.what = device_topic::kind::heartbeat;
    } else {
        return std::nullopt;
    }
    t.remove_prefix(root.size());
    const auto cut = t.find(devices);
    if (cut == std::string_view::npos || cut == 0) return std::nullopt;
    out.tenant = t.substr(0, cut);
    out.device = t.substr(cut + devices.size());
    if (out.device.empty() || out.device.find('/') != std::string_view::npos ||
        out.tenant.find('/') != std::string_view::npos)
        return std::nullopt;
    return out;
}

ingest::ingest(storage::lmdb_store& store, engine::telemetry_limits limits, bool durable)
    : store_(store), limits_(limits), durable_(durable) {}

void ingest::attach(broker::server& server, engine::rules_engine* rules) {
    server_ = &server;
    rules_ = rules;
    if (rules_ != nullptr) rules_->set_producers(server.shard_count());
    decoders_.clear();
    for (unsigned i = 0; i < server.shard_count(); ++i)
        decoders_.push_back(std::make_unique<engine::telemetry_decoder>(limits_));
}

reason_code ingest::on_publish(const broker::message_ptr& m, const broker::ack_hold& hold) {
    const auto where = parse_device_topic(m->topic);
    if (!where) return reason_code::success;
    if (where->what == device_topic::kind::heartbeat) {
        if (rules_ != nullptr) rules_->stage(m->origin_shard, where->tenant, where->device, {});
        return reason_code::success;
    }
    auto& decoder = *decoders_.at(m->origin_shard);
    auto decoded = decoder.decode(m->payload);
    if (!decoded) {
        rejected_.fetch_add(1, std::memory_order_relaxed);
        note_rejection(m->topic, decoded.error(), decoder.error_detail());
        return reason_code::payload_format_invalid;
    }
    storage::reading r;
    r.tenant = where->tenant;
    r.device = where->device;
    r.ts_ms = decoded->ts_ms ? *decoded->ts_ms
                             : std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();
    r.metrics = decoded->metrics;
    auto token = durable_ ? hold.take() : std::shared_ptr<void>();
    if (store_.append(r, token) == storage::append_result::overloaded) {
        // The connection still holds the ticket: this only undoes our hold.
        if (token && server_ != nullptr) server_->release_hold(std::move(token), false);
        if (overloaded_.fetch_add(1, std::memory_order_relaxed) % 10000 == 0)
            spdlog::warn("telemetry refused: the storage writer is behind (queue full); publishers get 0x97");
        return reason_code::quota_exceeded;
    }
    readings_.fetch_add(1, std::memory_order_relaxed);
    points_.fetch_add(r.metrics.size(), std::memory_order_relaxed);
    if (rules_ != nullptr) rules_->stage(m->origin_shard, r.tenant, r.device, r.metrics);
    if (listener_) listener_(r);
    return reason_code::success;
}

void ingest::on_batch_end(unsigned shard) {
    if (rules_ != nullptr) rules_->flush(shard);
}

void ingest::on_batch_sent(unsigned shard) {
    if (rules_ != nullptr) rules_->flush_done(shard);
}

void ingest::note_rejection(std::string_view topic, const boost::system::error_code& ec, std::string_view detail) {
    const auto second = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    if (log_window_.exchange(second, std::memory_order_relaxed) != second)
        logged_in_window_.store(0, std::memory_order_relaxed);
    if (logged_in_window_.fetch_add(1, std::memory_order_relaxed) >= log_burst) return;
    spdlog::warn("telemetry rejected topic={} reason={} detail={} rejected_total={}", logfmt_value(topic),
                 logfmt_value(ec.message()), logfmt_value(detail), rejected_.load(std::memory_order_relaxed));
}

ingest_stats ingest::stats() const noexcept {
    return {readings_.load(std::memory_order_relaxed), points_.load(std::memory_order_relaxed),
            rejected_.load(std::memory_order_relaxed), overloaded_.load(std::memory_order_relaxed)};
}

// ---- durable broker state ----------------------------------------------------

namespace {
storage::kv_table table_of(broker::durable_table t) {
    switch (t) {
    case broker::durable_table::sessions: return storage::kv_table::sessions;
    case broker::durable_table::queued: return storage::kv_table::session_messages;
    case broker::durable_table::retained: return storage::kv_table::retained;
    }
    return storage::kv_table::sessions;
}
} // namespace

void durable_broker_state::put(broker::durable_table t, std::string_view key, std::string_view value,
                               std::shared_ptr<void> hold) {
    if (store_.put(table_of(t), key, value, hold) == storage::append_result::overloaded) refused(std::move(hold));
}

void durable_broker_state::erase(broker::durable_table t, std::string_view key, std::shared_ptr<void> hold) {
    if (store_.erase(table_of(t), key, hold) == storage::append_result::overloaded) refused(std::move(hold));
}

void durable_broker_state::load(broker::durable_table t,
                                const std::function<void(std::string_view, std::string_view)>& f) {
    store_.scan(table_of(t), f);
}

void durable_broker_state::refused(std::shared_ptr<void> hold) {
    spdlog::error("broker state not stored: the storage writer is behind (queue full); a restart may lose it");
    if (hold && server_ != nullptr) server_->release_hold(std::move(hold), false);
}

} // namespace pulsegate::daemon
