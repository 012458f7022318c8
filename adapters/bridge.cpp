#include "adapters/bridge.hpp"

#include "common/thread.hpp"

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <optional>

namespace pulsegate::adapters {

namespace {

using steady = std::chrono::steady_clock;

// The worker falls this far behind (a stalled disk) before offers are refused.
constexpr std::size_t max_pending_messages = 100000;
constexpr std::size_t max_pending_bytes = 64u << 20;
// Messages read from the queue per read transaction when filling the window.
constexpr std::size_t read_chunk = 256;

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

struct url_parts {
    std::string_view scheme; // as Paho names it: tcp, ssl, ws, wss
    std::string_view authority;
    std::string_view path;
    std::string_view port; // empty: the scheme's default
    std::string_view default_port;
};

std::optional<url_parts> split_url(std::string_view url, std::string* why) {
    const auto sep = url.find("://");
    if (sep == std::string_view::npos) {
        *why = "expected scheme://host[:port], e.g. mqtt://broker.example:1883";
        return std::nullopt;
    }
    url_parts p;
    const auto scheme = url.substr(0, sep);
    if (scheme == "mqtt" || scheme == "tcp") p = {"tcp", {}, {}, {}, "1883"};
    else if (scheme == "mqtts" || scheme == "ssl") p = {"ssl", {}, {}, {}, "8883"};
    else if (scheme == "ws") p = {"ws", {}, {}, {}, "80"};
    else if (scheme == "wss") p = {"wss", {}, {}, {}, "443"};
    else {
        *why = "unknown scheme \"" + std::string(scheme) + "\" (use mqtt, mqtts, ws or wss)";
        return std::nullopt;
    }
    auto rest = url.substr(sep + 3);
    const auto slash = rest.find('/');
    p.authority = rest.substr(0, slash);
    if (slash != std::string_view::npos) p.path = rest.substr(slash);
    if (p.authority.find('@') != std::string_view::npos) {
        *why = "no user info in the url: set username and password";
        return std::nullopt;
    }
    std::string_view host = p.authority;
    if (host.starts_with('[')) {
        const auto close = host.find(']');
        if (close == std::string_view::npos) {
            *why = "unterminated [IPv6] address";
            return std::nullopt;
        }
        if (close + 1 < host.size()) {
            if (host[close + 1] != ':') {
                *why = "expected :port after the [IPv6] address";
                return std::nullopt;
            }
            p.port = host.substr(close + 2);
        }
        host = host.substr(0, close + 1);
    } else if (const auto colon = host.find(':'); colon != std::string_view::npos) {
        p.port = host.substr(colon + 1);
        host = host.substr(0, colon);
    }
    if (host.empty() || host == "[]") {
        *why = "no host";
        return std::nullopt;
    }
    if (p.authority.size() != host.size()) {
        unsigned port = 0;
        auto [end, ec] = std::from_chars(p.port.data(), p.port.data() + p.port.size(), port);
        if (p.port.empty() || ec != std::errc{} || end != p.port.data() + p.port.size() || port == 0 || port > 65535) {
            *why = "port \"" + std::string(p.port) + "\" is not 1..65535";
            return std::nullopt;
        }
    }
    if (!p.path.empty() && p.scheme != "ws" && p.scheme != "wss") {
        *why = "a path is only allowed for ws:// and wss://";
        return std::nullopt;
    }
    return p;
}

template <class Success, class Failure>
class action : public mqtt::iaction_listener {
public:
    action(Success s, Failure f) : success_(std::move(s)), failure_(std::move(f)) {}
    void on_success(const mqtt::token& t) override { success_(t); }
    void on_failure(const mqtt::token& t) override { failure_(t); }

private:
    Success success_;
    Failure failure_;
};

// Why a connect or publish failed, for the log and the health page.
std::string failure_text(const mqtt::token& t) {
    const int rc = t.get_return_code();
    switch (rc) {
    case 1: return "refused: unacceptable protocol version";
    case 2: return "refused: identifier rejected";
    case 3: return "refused: server unavailable";
    case 4: return "refused: bad user name or password";
    case 5: return "refused: not authorised";
    default: break;
    }
    const int reason = t.get_reason_code();
    if (reason >= 0x80 && reason < 0xFF) return fmt::format("refused with reason code 0x{:02X}", reason);
    return fmt::format("no connection (TCP/TLS failure or timeout, Paho code {})", rc);
}

} // namespace

std::string check_bridge_url(std::string_view url) {
    std::string why;
    return split_url(url, &why) ? std::string() : why;
}

std::string paho_uri(std::string_view url) {
    std::string why;
    const auto p = split_url(url, &why);
    if (!p) return {};
    std::string out = std::string(p->scheme) + "://" + std::string(p->authority);
    if (p->port.empty()) out += ":" + std::string(p->default_port);
    out += p->path;
    return out;
}

std::string remap(const bridge_rule& r, std::string_view topic) {
    if (!r.strip.empty() && topic.starts_with(r.strip)) topic.remove_prefix(r.strip.size());
    std::string out;
    out.reserve(r.prefix.size() + topic.size());
    out += r.prefix;
    out += topic;
    return out;
}

// Paho's callbacks (its own threads): they only signal the worker.
struct bridge::listener {
    explicit listener(bridge& b)
        : published([&b](const mqtt::token& t) { b.ack(t); },
                     [&b](const mqtt::token& t) {
                         b.signal(event::publish_failed, "publish failed: " + failure_text(t));
                     }),
          connected([&b](const mqtt::token&) { b.signal(event::connected); },
                    [&b](const mqtt::token& t) { b.signal(event::connect_failed, failure_text(t)); }) {}
    action<std::function<void(const mqtt::token&)>, std::function<void(const mqtt::token&)>> published;
    action<std::function<void(const mqtt::token&)>, std::function<void(const mqtt::token&)>> connected;
};

bridge::bridge(bridge_options opts, std::unique_ptr<bridge_queue> queue, bridge_hooks hooks)
    : opts_(std::move(opts)), hooks_(std::move(hooks)), queue_(std::move(queue)) {
    if (opts_.client_id.empty()) opts_.client_id = "pulsegate-bridge-" + opts_.name;
    queued_ = queue_->size();
    oldest_ms_ = static_cast<std::uint64_t>(queue_->oldest_ms());
    const auto uri = paho_uri(opts_.url);
    if (opts_.mqtt_version == 5)
        client_ = std::make_unique<mqtt::async_client>(uri, opts_.client_id, mqtt::create_options(MQTTVERSION_5));
    else
        client_ = std::make_unique<mqtt::async_client>(uri, opts_.client_id, nullptr);
    listener_ = std::make_unique<listener>(*this);
    client_->set_connection_lost_handler([this](const std::string& cause) {
        signal(event::lost, cause.empty() ? "connection lost" : cause);
    });
    client_->set_message_callback([this](mqtt::const_message_ptr m) {
        imported(m->get_topic(), m->get_payload_str(), static_cast<std::uint8_t>(m->get_qos()), m->is_retained());
    });
}

bridge::~bridge() {
    stop();
    // Before any other member goes: no Paho thread reaches this bridge
    // (its mutex, its listeners) once the client is destroyed. Paho refuses
    // to drop the callbacks while a connect is under way (an upstream that
    // keeps failing its TLS handshake, say): destroying the client then
    // cancels the connect and ends the callbacks all the same.
    try {
        client_->disable_callbacks();
    } catch (const mqtt::exception& e) {
        spdlog::debug("bridge {}: callbacks not disabled before destruction: {}", opts_.name, e.what());
    }
    client_.reset();
}

void bridge::start() {
    worker_ = std::thread([this] {
        common::name_this_thread("pg-bridge");
        common::mark_background_thread();
        run();
    });
}

void bridge::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stop_) return;
        stop_ = true;
    }
    wake_.notify_one();
    if (worker_.joinable()) worker_.join();
}

void bridge::offer(unsigned rule, std::string_view topic, std::string_view payload, std::shared_ptr<void> hold) {
    const auto& r = opts_.forward.at(rule);
    if (!r.strip.empty() && topic.starts_with(r.strip)) topic.remove_prefix(r.strip.size());
    bool refused = false, was_empty = false;
    {
        std::lock_guard lock(mutex_);
        if (stop_ || in_.entries.size() >= max_pending_messages || in_.bytes.size() >= max_pending_bytes) {
            refused = true;
        } else {
            was_empty = in_.entries.empty();
            in_.bytes.append(r.prefix).append(topic).append(payload);
            in_.entries.push_back({r.prefix.size() + topic.size(), payload.size(), now_ms(), r.qos});
            in_.holds.push_back(std::move(hold));
        }
    }
    if (refused) {
        dropped_overflow_.fetch_add(1, std::memory_order_relaxed);
        if (hold && hooks_.release) hooks_.release(std::move(hold), false);
        return;
    }
    if (was_empty) wake_.notify_one();
}

bridge_stats bridge::stats() const {
    bridge_stats s;
    s.connected = up_.load(std::memory_order_relaxed);
    s.queued = queued_.load(std::memory_order_relaxed);
    const auto oldest = static_cast<std::int64_t>(oldest_ms_.load(std::memory_order_relaxed));
    s.oldest_age_ms = s.queued != 0 && oldest != 0 ? std::max<std::int64_t>(0, now_ms() - oldest) : 0;
    s.in_flight = inflight_count_.load(std::memory_order_relaxed);
    s.sent = sent_.load(std::memory_order_relaxed);
    s.imported = imported_.load(std::memory_order_relaxed);
    s.connects = connects_.load(std::memory_order_relaxed);
    s.dropped_max_messages = dropped_max_messages_.load(std::memory_order_relaxed);
    s.dropped_max_age = dropped_max_age_.load(std::memory_order_relaxed);
    s.dropped_full = dropped_full_.load(std::memory_order_relaxed);
    s.dropped_overflow = dropped_overflow_.load(std::memory_order_relaxed);
    std::lock_guard lock(mutex_);
    s.last_error = last_error_;
    return s;
}

void bridge::ack(const mqtt::token& t) {
    const auto seq = reinterpret_cast<std::uintptr_t>(t.get_user_context());
    bool was_empty = false;
    {
        std::lock_guard lock(mutex_);
        was_empty = acks_.empty();
        acks_.push_back(seq);
    }
    if (was_empty) wake_.notify_one();
}

void bridge::signal(event ev, std::string why) {
    {
        std::lock_guard lock(mutex_);
        events_.emplace_back(ev, std::move(why));
    }
    wake_.notify_one();
}

void bridge::run() {
    pending batch;
    std::vector<std::uint64_t> acks;
    std::vector<std::pair<event, std::string>> events;
    auto last_tick = steady::now() - std::chrono::seconds(1);
    for (;;) {
        bool stopping = false;
        {
            std::unique_lock lock(mutex_);
            wake_.wait_for(lock, std::chrono::milliseconds(250), [&] {
                return stop_ || !in_.entries.empty() || !acks_.empty() || !events_.empty();
            });
            std::swap(batch, in_);
            std::swap(acks, acks_);
            std::swap(events, events_);
            stopping = stop_;
        }
        if (!batch.entries.empty()) store(batch);
        // Acknowledgements first: they count even when the link dropped
        // right after them (a loss forgets what is in flight).
        if (!acks.empty()) on_acks(acks);
        for (auto& [ev, why] : events) handle(ev, why);
        events.clear();
        if (stopping) break;

        const auto now = steady::now();
        if (now - last_tick >= std::chrono::seconds(1)) {
            last_tick = now;
            const auto cutoff = now_ms() - static_cast<std::int64_t>(opts_.queue_max_age_s) * 1000;
            if (auto dropped = queue_->drop_older_than(cutoff); !dropped) {
                spdlog::error("bridge {}: cannot drop expired messages: {}", opts_.name, dropped.error().message());
            } else if (*dropped != 0) {
                dropped_max_age_.fetch_add(*dropped, std::memory_order_relaxed);
            }
            log_drops();
        }
        if (!connected_ && !connecting_ && now >= next_connect_) connect();
        fill_window();
        queued_.store(queue_->size(), std::memory_order_relaxed);
        oldest_ms_.store(static_cast<std::uint64_t>(queue_->oldest_ms()), std::memory_order_relaxed);
        inflight_count_.store(inflight_.size(), std::memory_order_relaxed);
    }
    queued_.store(queue_->size(), std::memory_order_relaxed);
    try {
        if (client_->is_connected()) client_->disconnect(1000)->wait_for(std::chrono::milliseconds(1500));
    } catch (const mqtt::exception& e) {
        spdlog::debug("bridge {}: disconnect failed: {}", opts_.name, e.what());
    }
    up_ = false;
}

void bridge::store(pending& batch) {
    std::vector<bridge_queue::item> items;
    items.reserve(batch.entries.size());
    std::size_t at = 0;
    for (const auto& e : batch.entries) {
        const std::string_view all(batch.bytes);
        items.push_back({all.substr(at, e.topic_len), all.substr(at + e.topic_len, e.payload_len), e.queued_ms, e.qos,
                         false});
        at += e.topic_len + e.payload_len;
    }
    auto r = queue_->push(items);
    std::size_t stored = 0;
    if (!r) {
        spdlog::error("bridge {}: cannot queue {} messages: {} (they are not forwarded)", opts_.name, items.size(),
                      r.error().message());
        dropped_full_.fetch_add(items.size(), std::memory_order_relaxed);
    } else {
        stored = r->appended;
        dropped_full_.fetch_add(r->refused, std::memory_order_relaxed);
        dropped_max_messages_.fetch_add(r->evicted, std::memory_order_relaxed);
    }
    if (hooks_.release) {
        for (std::size_t i = 0; i < batch.holds.size(); ++i)
            if (batch.holds[i]) hooks_.release(std::move(batch.holds[i]), i < stored);
    }
    batch.clear();
}

void bridge::handle(event ev, const std::string& why) {
    const auto now = steady::now();
    switch (ev) {
    case event::connected:
        connecting_ = false;
        connected_ = true;
        backoff_ = std::chrono::seconds(0);
        connects_.fetch_add(1, std::memory_order_relaxed);
        inflight_.clear();
        next_send_ = 0; // from the oldest unacknowledged message
        up_ = true;
        spdlog::info("bridge {}: connected to {} as {} queued={}", opts_.name, opts_.url, opts_.client_id,
                     queue_->size());
        subscribe_imports();
        if (hooks_.on_state) hooks_.on_state(true);
        break;
    case event::connect_failed:
        connecting_ = false;
        backoff_ = backoff_.count() == 0 ? std::chrono::seconds(1)
                                         : std::min(backoff_ * 2, std::chrono::seconds(opts_.reconnect_max_s));
        next_connect_ = now + backoff_;
        {
            std::lock_guard lock(mutex_);
            if (last_error_ != why)
                spdlog::warn("bridge {}: cannot connect to {}: {}; retrying every {} s at most", opts_.name,
                             opts_.url, why, opts_.reconnect_max_s);
            last_error_ = why;
        }
        break;
    case event::lost:
        if (!connected_) break;
        connected_ = false;
        up_ = false;
        inflight_.clear();
        next_send_ = 0;
        backoff_ = std::chrono::seconds(1);
        next_connect_ = now + backoff_;
        {
            std::lock_guard lock(mutex_);
            last_error_ = why;
        }
        spdlog::warn("bridge {}: connection to {} lost ({}); messages are queued until it is back queued={}",
                     opts_.name, opts_.url, why,
                     queue_->size());
        if (hooks_.on_state) hooks_.on_state(false);
        break;
    case event::publish_failed:
        // Start again from the oldest unacknowledged message (duplicates
        // are allowed; gaps are not).
        if (!connected_) break;
        spdlog::debug("bridge {}: {}", opts_.name, why);
        inflight_.clear();
        next_send_ = 0;
        break;
    }
}

void bridge::on_acks(std::vector<std::uint64_t>& acks) {
    for (const auto seq : acks) {
        auto it = std::lower_bound(inflight_.begin(), inflight_.end(), seq,
                                   [](const in_flight& f, std::uint64_t s) { return f.seq < s; });
        if (it != inflight_.end() && it->seq == seq) it->acked = true;
    }
    acks.clear();
    std::uint64_t last = 0, n = 0;
    while (!inflight_.empty() && inflight_.front().acked) {
        last = inflight_.front().seq;
        inflight_.pop_front();
        ++n;
    }
    if (n == 0) return;
    if (auto ec = queue_->remove_through(last)) {
        spdlog::error("bridge {}: cannot remove sent messages from the queue: {} (they will be sent again)",
                      opts_.name, ec.message());
        return;
    }
    sent_.fetch_add(n, std::memory_order_relaxed);
}

void bridge::fill_window() {
    if (!connected_) return;
    while (inflight_.size() < opts_.max_inflight) {
        const auto want = std::min<std::size_t>(read_chunk, opts_.max_inflight - inflight_.size());
        if (auto ec = queue_->read(next_send_, want, sendbuf_)) {
            spdlog::error("bridge {}: cannot read the queue: {}", opts_.name, ec.message());
            return;
        }
        if (sendbuf_.empty()) return;
        for (auto& m : sendbuf_) {
            try {
                auto msg = mqtt::make_message(m.topic, std::move(m.payload), m.qos, m.retain);
                client_->publish(std::move(msg), reinterpret_cast<void*>(static_cast<std::uintptr_t>(m.seq)),
                                 listener_->published);
            } catch (const mqtt::exception& e) {
                spdlog::debug("bridge {}: publish failed: {}", opts_.name, e.what());
                return; // the loss (or the failure) will rewind
            }
            inflight_.push_back({m.seq, false});
            next_send_ = m.seq + 1;
        }
    }
}

void bridge::connect() {
    mqtt::connect_options opts;
    if (opts_.mqtt_version == 5) {
        opts.set_mqtt_version(MQTTVERSION_5);
        opts.set_clean_start(opts_.clean_start);
        if (!opts_.clean_start && opts_.session_expiry_s != 0)
            opts.set_properties(mqtt::properties{{mqtt::property::SESSION_EXPIRY_INTERVAL,
                                                  static_cast<int>(opts_.session_expiry_s)}});
    } else {
        opts.set_mqtt_version(MQTTVERSION_3_1_1); // before the flag: it resets it
        opts.set_clean_session(opts_.clean_start);
    }
    opts.set_keep_alive_interval(opts_.keepalive_s);
    opts.set_connect_timeout(10);
    opts.set_max_inflight(static_cast<int>(std::max<std::uint32_t>(opts_.max_inflight, 1)));
    if (!opts_.username.empty()) opts.set_user_name(opts_.username);
    if (!opts_.password.empty()) opts.set_password(opts_.password);
    const auto uri = paho_uri(opts_.url);
    if (uri.starts_with("ssl://") || uri.starts_with("wss://")) {
        mqtt::ssl_options ssl;
        if (!opts_.tls_ca.empty()) ssl.set_trust_store(opts_.tls_ca);
        if (!opts_.tls_cert.empty()) ssl.set_key_store(opts_.tls_cert);
        if (!opts_.tls_key.empty()) ssl.set_private_key(opts_.tls_key);
        ssl.set_enable_server_cert_auth(!opts_.tls_insecure);
        ssl.set_verify(!opts_.tls_insecure);
        // No set_error_handler: see mqtt_sender.cpp (Paho C++ 1.2 keeps a
        // pointer to this object).
        opts.set_ssl(std::move(ssl));
    }
    connecting_ = true;
    try {
        client_->connect(opts, nullptr, listener_->connected);
    } catch (const mqtt::exception& e) {
        connecting_ = false;
        handle(event::connect_failed, e.what());
    }
}

void bridge::subscribe_imports() {
    for (const auto& r : opts_.import) {
        try {
            if (opts_.mqtt_version == 5) {
                // No Local: the remote does not echo back what we forward.
                client_->subscribe(r.filter, r.qos, mqtt::subscribe_options(true));
            } else {
                client_->subscribe(r.filter, r.qos);
            }
        } catch (const mqtt::exception& e) {
            spdlog::error("bridge {}: cannot subscribe to {}: {}", opts_.name, r.filter, e.what());
        }
    }
}

void bridge::imported(std::string_view topic, std::string payload, std::uint8_t qos, bool retain) {
    for (const auto& r : opts_.import) {
        if (!hooks_.matches(r.filter, topic)) continue;
        auto local = remap(r, topic);
        if (!hooks_.valid_name(local)) {
            spdlog::warn("bridge {}: imported topic \"{}\" maps to \"{}\", which is not a valid topic: dropped",
                         opts_.name, topic, local);
            return;
        }
        hooks_.publish_local(std::move(local), std::move(payload), qos, retain);
        imported_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
}

void bridge::log_drops() {
    const auto s = stats();
    const auto total = s.dropped();
    if (total == logged_drops_) return;
    const auto now = steady::now();
    if (now - last_drop_log_ < std::chrono::seconds(10)) return;
    last_drop_log_ = now;
    spdlog::warn("bridge {}: the store-and-forward bounds dropped messages; raise queue_max_messages, "
                 "queue_max_age_s or queue_max_mb dropped={} by_max_messages={} by_max_age={} full={} overflow={} "
                 "queued={}",
                 opts_.name, total, s.dropped_max_messages, s.dropped_max_age, s.dropped_full, s.dropped_overflow,
                 s.queued);
    logged_drops_ = total;
}

} // namespace pulsegate::adapters
