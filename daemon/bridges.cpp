#include "daemon/bridges.hpp"

#include "broker/observer.hpp"
#include "broker/server.hpp"
#include "broker/topic.hpp"
#include "common/thread.hpp"
#include "storage/forward_queue.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <system_error>

namespace pulsegate::daemon {

void load_bridge_passwords(std::vector<adapters::bridge_options>& all) {
    for (auto& b : all) {
        if (b.password_file.empty()) continue;
        std::ifstream in(b.password_file, std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!in && !in.eof())
            throw std::runtime_error(fmt::format("[[bridge]] {} password_file {}: cannot read it: {}", b.name,
                                                 b.password_file, std::generic_category().message(errno)));
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
        if (text.empty())
            throw std::runtime_error(
                fmt::format("[[bridge]] {} password_file {}: the file is empty", b.name, b.password_file));
        b.password = std::move(text);
    }
}

namespace {

// The bridge's queue on LMDB (storage/forward_queue.hpp).
class lmdb_queue final : public adapters::bridge_queue {
public:
    explicit lmdb_queue(storage::forward_queue_options o) : q_(std::move(o)) {}

    boost::system::result<pushed> push(std::span<const item> items) override { return q_.push(items); }
    boost::system::error_code read(std::uint64_t from, std::size_t max, std::vector<message>& out) override {
        return q_.read(from, max, out);
    }
    boost::system::error_code remove_through(std::uint64_t seq) override { return q_.remove_through(seq); }
    boost::system::result<std::uint64_t> drop_older_than(std::int64_t cutoff_ms) override {
        return q_.drop_older_than(cutoff_ms);
    }
    std::uint64_t size() const override { return q_.size(); }
    std::int64_t oldest_ms() const override { return q_.oldest_ms(); }

private:
    storage::forward_queue q_;
};

} // namespace

struct bridges::entry final : broker::message_tap {
    std::unique_ptr<adapters::bridge> bridge;
    unsigned tap_id = 0;

    void on_message(const broker::message_ptr& m, unsigned filter, const broker::ack_hold& hold) override {
        bridge->offer(filter, m->topic, m->payload, hold.take());
    }
};

bridges::bridges(std::vector<adapters::bridge_options> cfg, const std::filesystem::path& data_dir, bool sync) {
    for (auto& o : cfg) {
        auto e = std::make_unique<entry>();
        auto* raw = e.get();
        adapters::bridge_hooks hooks;
        hooks.publish_local = [this, raw](std::string topic, std::string payload, std::uint8_t qos, bool retain) {
            server_->publish(std::move(topic), std::move(payload), qos, retain, raw->tap_id);
        };
        hooks.release = [this](std::shared_ptr<void> hold, bool ok) { server_->release_hold(std::move(hold), ok); };
        hooks.matches = [](std::string_view filter, std::string_view topic) {
            return broker::topic::matches(filter, topic);
        };
        hooks.valid_name = [](std::string_view topic) { return !broker::topic::check_name(topic); };
        hooks.on_state = [this, raw](bool) { publish_sys(*raw); };
        auto queue = std::make_unique<lmdb_queue>(storage::forward_queue_options{
            .dir = data_dir / "bridge" / o.name,
            .max_messages = o.queue_max_messages,
            .max_bytes = o.queue_max_mb << 20,
            .sync = sync});
        e->bridge = std::make_unique<adapters::bridge>(std::move(o), std::move(queue), std::move(hooks));
        entries_.push_back(std::move(e));
    }
}

bridges::~bridges() { stop(); }

void bridges::attach(broker::server& server) {
    server_ = &server;
    for (auto& e : entries_) {
        std::vector<std::string> filters;
        for (const auto& r : e->bridge->options().forward) filters.push_back(r.filter);
        e->tap_id = server.add_tap(*e, std::move(filters));
    }
}

void bridges::start(std::chrono::seconds sys_interval) {
    if (entries_.empty()) return;
    for (auto& e : entries_) e->bridge->start();
    if (sys_interval.count() == 0) return;
    sys_ = std::thread([this, sys_interval] {
        common::name_this_thread("pg-bridge-sys");
        std::unique_lock lock(mutex_);
        while (!stop_) {
            for (const auto& e : entries_) publish_sys(*e);
            wake_.wait_for(lock, sys_interval, [this] { return stop_; });
        }
    });
}

void bridges::stop() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    if (sys_.joinable()) sys_.join();
    for (auto& e : entries_) e->bridge->stop();
}

std::vector<std::pair<std::string, adapters::bridge_stats>> bridges::stats() const {
    std::vector<std::pair<std::string, adapters::bridge_stats>> out;
    for (const auto& e : entries_) out.emplace_back(e->bridge->options().name, e->bridge->stats());
    return out;
}

void bridges::publish_sys(const entry& e) const {
    if (server_ == nullptr) return;
    const auto s = e.bridge->stats();
    const auto base = fmt::format("$SYS/broker/bridge/{}/", e.bridge->options().name);
    const auto put = [&](std::string_view leaf, std::string value) {
        server_->publish(base + std::string(leaf), std::move(value), 0, true);
    };
    put("state", s.connected ? "connected" : "disconnected");
    put("queued", std::to_string(s.queued));
    put("oldest_age_s", std::to_string(s.oldest_age_ms / 1000));
    put("in_flight", std::to_string(s.in_flight));
    put("sent", std::to_string(s.sent));
    put("imported", std::to_string(s.imported));
    put("dropped", std::to_string(s.dropped()));
}

} // namespace pulsegate::daemon
