#include "webui/live_feed.hpp"

#include "common/json_text.hpp"
#include "storage/state/device_repository.hpp"
#include "webui/api_error.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>

#include <spdlog/spdlog.h>

#include <chrono>
#include <deque>
#include <functional>

namespace pulsegate::webui {

namespace json = boost::json;

namespace {

std::string message(json::object o) { return common::to_json_text(o); }

// The Origin header's host[:port] equals Host: the page is our own.
bool same_origin(std::string_view origin, std::string_view host) {
    const auto scheme = origin.find("://");
    if (scheme == std::string_view::npos || host.empty())
        return false;
    return boost::beast::iequals(origin.substr(scheme + 3), host);
}

} // namespace

// One open feed. Its queue is filled by publishers (any thread) and drained
// by the connection's writer; the feed knows it by address until closed()
// or its destruction, whichever comes first.
class live_feed::client final : public websocket_session {
public:
    // `still_allowed`: whether the credentials the feed was opened with
    // still let it in (the session may end: logout, expiry, a disabled user).
    client(live_feed& feed, std::string tenant, std::string user, std::function<bool()> still_allowed)
        : feed_(feed), tenant_(std::move(tenant)), user_(std::move(user)), still_allowed_(std::move(still_allowed)) {}
    ~client() override { feed_.remove(this); }

    const std::string& tenant() const noexcept { return tenant_; }

    void opened(std::function<void()> wake) override {
        {
            std::lock_guard lock(mutex_);
            wake_ = std::move(wake);
        }
        send(message({{"type", "hello"}, {"tenant", tenant_}, {"user", user_}}));
    }

    // Before anything more is sent: a feed whose session has ended closes.
    // Asked at most once a second (a database lookup).
    websocket_close should_close() override {
        const auto now = std::chrono::steady_clock::now();
        if (now - checked_ < std::chrono::seconds(1)) return websocket_close::none;
        checked_ = now;
        return still_allowed_() ? websocket_close::none : websocket_close::policy_violation;
    }

    std::optional<std::string> next_outgoing() override {
        std::lock_guard lock(mutex_);
        if (queue_.empty())
            return std::nullopt;
        auto m = std::move(queue_.front());
        queue_.pop_front();
        return m;
    }

    void received(std::string_view text) override {
        boost::system::error_code ec;
        auto v = json::parse(text, ec);
        const json::object* o = !ec ? v.if_object() : nullptr;
        const json::value* op = o != nullptr ? o->if_contains("op") : nullptr;
        if (op == nullptr || !op->is_string() || (op->get_string() != "subscribe" && op->get_string() != "unsubscribe"))
            return error("send {\"op\": \"subscribe\" or \"unsubscribe\", \"alerts\": true or \"device\": id}");
        const bool on = op->get_string() == "subscribe";
        const auto reply = [&](json::object what) {
            what["type"] = on ? "subscribed" : "unsubscribed";
            send(message(std::move(what)));
        };
        if (const auto* a = o->if_contains("alerts"); a != nullptr && a->is_bool() && a->get_bool()) {
            feed_.watch_alerts(this, on);
            return reply({{"alerts", true}});
        }
        const auto* d = o->if_contains("device");
        if (d == nullptr || !d->is_string() || d->get_string().empty())
            return error("name what to " + std::string(op->get_string()) + ": \"alerts\": true or \"device\": id");
        const std::string device(d->get_string());
        if (!on) {
            feed_.unwatch_device(this, device);
            return reply({{"device", device}});
        }
        auto found = storage::state::device_repository(*feed_.db_).get(tenant_, device);
        if (!found)
            return error("the device list cannot be read now; try again");
        if (!*found)
            return error("no device \"" + device + "\""); // another tenant's looks the same
        if (!feed_.watch_device(this, device))
            return error("at most " + std::to_string(feed_.opts_.max_devices_per_client) +
                         " devices at once; unsubscribe from one first");
        reply({{"device", device}});
    }

    void closed() noexcept override { feed_.remove(this); }

    // Queues `m` (any thread); past the limit, drops the backlog for a resync.
    void send(std::string m) {
        std::function<void()> wake;
        {
            std::lock_guard lock(mutex_);
            if (queue_.size() >= feed_.opts_.queue_limit) {
                queue_.clear();
                queue_.push_back(message(
                    {{"type", "resync"},
                     {"reason", "the page fell behind the live feed; reload what it shows"}}));
                feed_.resyncs_.fetch_add(1, std::memory_order_relaxed);
                return; // the writer is busy anyway: it will find the resync
            }
            queue_.push_back(std::move(m));
            wake = wake_;
        }
        feed_.messages_.fetch_add(1, std::memory_order_relaxed);
        if (wake)
            wake();
    }

private:
    void error(std::string text) { send(message({{"type", "error"}, {"message", std::move(text)}})); }

    live_feed& feed_;
    const std::string tenant_;
    const std::string user_;
    const std::function<bool()> still_allowed_;
    std::chrono::steady_clock::time_point checked_ = std::chrono::steady_clock::now(); // writer's strand only
    std::mutex mutex_;
    std::deque<std::string> queue_;
    std::function<void()> wake_;
};

void add_live_feed_route(router& r) {
    r.add(http::verb::get, "/api/v1/ws", [](const request_context&) {
        auto res = json_error(http::status::upgrade_required, codes::upgrade_required,
                              "/api/v1/ws is a WebSocket: connect with a WebSocket client");
        res.headers.emplace_back("Upgrade", "websocket");
        return res;
    });
}

live_feed::live_feed(storage::state::database& db, live_feed_options o) : db_(&db), opts_(o) {}

live_feed::~live_feed() = default;

websocket_acceptor live_feed::acceptor(auth& a) {
    return [this, &a](const request_context& ctx) -> std::variant<response, std::shared_ptr<websocket_session>> {
        const auto origin = ctx.header(http::field::origin);
        if (origin && !same_origin(*origin, ctx.header(http::field::host).value_or("")))
            return json_error(http::status::forbidden, codes::forbidden,
                              "the live feed is open to this server's own pages only (Origin does not match Host)");
        auto who = a.check(ctx, access::tenant_read);
        if (!who)
            return to_response(who.error());
        if (!who->tenant)
            return json_error(http::status::forbidden, codes::forbidden,
                              "the live feed is a tenant's; operators use the operator pages");
        {
            std::lock_guard lock(mutex_);
            if (clients_.size() >= opts_.max_clients)
                return json_error(http::status::service_unavailable, codes::unavailable,
                                  "too many live feeds are open; try again later");
        }
        // The credentials, kept to ask again later (client::should_close).
        auto credentials = std::make_shared<http::fields>();
        for (const auto field : {http::field::cookie, http::field::authorization})
            if (const auto v = ctx.header(field)) credentials->set(field, *v);
        auto still_allowed = [&a, credentials] {
            request_context again;
            again.method = http::verb::get;
            again.target = again.path = "/api/v1/ws";
            again.headers = credentials.get();
            return a.check(again, access::tenant_read).has_value();
        };
        auto c = std::make_shared<client>(*this, *who->tenant, who->name, std::move(still_allowed));
        add(c.get());
        return c;
    };
}

void live_feed::add(client* c) {
    std::lock_guard lock(mutex_);
    clients_.insert(c);
}

void live_feed::remove(client* c) noexcept {
    std::lock_guard lock(mutex_);
    if (clients_.erase(c) == 0)
        return;
    if (auto it = alert_watchers_.find(c->tenant()); it != alert_watchers_.end() && it->second.erase(c) > 0) {
        alert_watch_count_.fetch_sub(1, std::memory_order_relaxed);
        if (it->second.empty())
            alert_watchers_.erase(it);
    }
    for (auto it = device_watchers_.begin(); it != device_watchers_.end();) {
        if (it->first.first == c->tenant() && it->second.erase(c) > 0)
            device_watch_count_.fetch_sub(1, std::memory_order_relaxed);
        it = it->second.empty() ? device_watchers_.erase(it) : std::next(it);
    }
}

bool live_feed::watch_device(client* c, const std::string& device) {
    std::lock_guard lock(mutex_);
    std::size_t mine = 0;
    for (const auto& [key, set] : device_watchers_)
        if (key.first == c->tenant() && set.contains(c)) {
            if (key.second == device)
                return true; // already
            ++mine;
        }
    if (mine >= opts_.max_devices_per_client)
        return false;
    device_watchers_[{c->tenant(), device}].insert(c);
    device_watch_count_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

void live_feed::unwatch_device(client* c, const std::string& device) {
    std::lock_guard lock(mutex_);
    auto it = device_watchers_.find({c->tenant(), device});
    if (it == device_watchers_.end() || it->second.erase(c) == 0)
        return;
    device_watch_count_.fetch_sub(1, std::memory_order_relaxed);
    if (it->second.empty())
        device_watchers_.erase(it);
}

void live_feed::watch_alerts(client* c, bool on) {
    std::lock_guard lock(mutex_);
    auto& set = alert_watchers_[c->tenant()];
    if (on ? set.insert(c).second : set.erase(c) > 0)
        on ? alert_watch_count_.fetch_add(1, std::memory_order_relaxed)
           : alert_watch_count_.fetch_sub(1, std::memory_order_relaxed);
    if (set.empty())
        alert_watchers_.erase(c->tenant());
}

void live_feed::on_alert_event(const engine::alert_event& e) {
    if (alert_watch_count_.load(std::memory_order_relaxed) == 0)
        return;
    std::lock_guard lock(mutex_);
    const auto it = alert_watchers_.find(e.alert.tenant);
    if (it == alert_watchers_.end())
        return;
    deliver(it->second, R"({"type":"alert","event":)" + engine::event_json(e) + "}");
}

void live_feed::on_reading(const storage::reading& r) {
    if (device_watch_count_.load(std::memory_order_relaxed) == 0)
        return;
    std::lock_guard lock(mutex_);
    // The key is built only when someone watches some device.
    const auto it = device_watchers_.find({std::string(r.tenant), std::string(r.device)});
    if (it == device_watchers_.end())
        return;
    json::object values;
    for (const auto& m : r.metrics)
        values[m.name] = m.value;
    deliver(it->second, message({{"type", "telemetry"},
                                 {"device", r.device},
                                 {"ts", r.ts_ms},
                                 {"values", std::move(values)}}));
}

void live_feed::deliver(const std::set<client*>& to, const std::string& m) {
    for (auto* c : to)
        c->send(m);
}

live_feed::stats live_feed::counts() const {
    std::lock_guard lock(mutex_);
    return {clients_.size(), messages_.load(std::memory_order_relaxed), resyncs_.load(std::memory_order_relaxed)};
}

} // namespace pulsegate::webui
