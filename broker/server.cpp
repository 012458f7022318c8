// Shards, routing between them, the client-id registry, listeners and the
// server facade. The model is described in core.hpp.

#include "broker/server.hpp"

#include "broker/core.hpp"
#include "broker/observer.hpp"
#include "common/log_limiter.hpp"
#include "common/thread.hpp"
#include "common/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <system_error>

#ifndef PULSEGATE_VERSION
#define PULSEGATE_VERSION "dev"
#endif

namespace pulsegate::broker {

namespace detail {

namespace {
constexpr auto token = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t scratch_size = 64 * 1024;

void log_exception(std::exception_ptr e, std::string_view what) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        spdlog::error("{} failed: {}", what, ex.what());
    }
}

// "{mount}{group}" and the filter of a "$share/{group}/{internal}" key.
std::pair<std::string, std::string> split_shared_key(std::string_view key, std::string_view mount) {
    key.remove_prefix(7); // "$share/"
    const auto slash = key.find('/');
    return {std::string(mount) + std::string(key.substr(0, slash)), std::string(key.substr(slash + 1))};
}
} // namespace

std::string registry_key(const client_identity& who, std::string_view client_id) {
    std::string key;
    key.reserve(who.tenant.size() + 1 + client_id.size());
    key.append(who.tenant).push_back('\0');
    key.append(client_id);
    return key;
}

// ---- shard ----------------------------------------------------------------

shard::shard(core& o, unsigned i) : owner(o), index(i), opts(o.opts), pool(*o.pools.at(i)) {
    scratch.resize(scratch_size);
    const auto n = owner.shards.capacity();
    outbox_.resize(n);
    ack_outbox_.resize(n);
    pause_outbox_.resize(n);
    directed_outbox_.resize(n);
}

shard::~shard() { tick_.reset(); }

void shard::route(const message_ptr& m, const ticket_ptr& t) {
    if (!owner.taps.empty()) offer_taps(m, t);
    deliver_local(m, t);
    const auto n = owner.shards.size();
    if (n == 1) return;
    for (unsigned j = 0; j < n; ++j) {
        if (j == index) continue;
        if (t) t->holds.fetch_add(1, std::memory_order_relaxed);
        outbox_[j].push_back({m, t});
    }
    schedule_flush();
}

void shard::offer_taps(const message_ptr& m, const ticket_ptr& t) {
    for (std::uint32_t id = 1; id <= owner.taps.size(); ++id) {
        if (id == m->from_tap) continue;
        const auto& e = owner.taps[id - 1];
        for (unsigned f = 0; f < e.filters.size(); ++f) {
            if (topic::matches(e.filters[f], m->topic)) {
                e.tap->on_message(m, f, ack_hold(&t));
                break;
            }
        }
    }
}

void shard::deliver_local(const message_ptr& m, const ticket_ptr& t) {
    if (m->retain) {
        auto [it, inserted] = retained.try_emplace(m->topic, m);
        if (!inserted && it->second->retain_seq < m->retain_seq) it->second = m;
    }
    matches_.clear();
    trie.match(m->topic, [&](std::uint64_t sid, const subscription_options& o) {
        if (o.no_local && sid == m->publisher_session) return;
        matches_.emplace_back(sid, o);
    });
    if (matches_.size() > 1) {
        std::sort(matches_.begin(), matches_.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
    }
    // One delivery per session: the highest QoS of its matching
    // subscriptions, with all their identifiers (MQTT 5 §3.3.4).
    boost::container::small_vector<std::uint32_t, 4> ids;
    for (std::size_t i = 0; i < matches_.size();) {
        const auto sid = matches_[i].first;
        std::uint8_t qos = 0;
        bool rap = false;
        ids.clear();
        for (; i < matches_.size() && matches_[i].first == sid; ++i) {
            const auto& o = matches_[i].second;
            qos = std::max(qos, o.qos);
            rap = rap || o.retain_as_published;
            if (o.subscription_id != 0) ids.push_back(o.subscription_id);
        }
        if (auto it = sessions.find(sid); it != sessions.end())
            deliver_to(*it->second, m, t, qos, rap && m->retain, ids);
    }
    if (index == 0 && !shared.empty()) deliver_shared(m, t);
}

void shard::deliver_to(session& s, const message_ptr& m, const ticket_ptr& t, std::uint8_t qos,
                       bool retain_flag, std::span<const std::uint32_t> subscription_ids, bool live) {
    delivery d;
    d.qos = std::min(m->qos, qos);
    // MQTT 3.1.1 §3.1.2.4 / Mosquitto: QoS 0 is not queued for an offline session.
    if (d.qos == 0 && s.conn == nullptr) return;
    d.msg = m;
    d.retain = retain_flag;
    d.subscription_ids.assign(subscription_ids.begin(), subscription_ids.end());
    if (d.qos > 0) d.hold = t;
    const bool qos_n = d.qos > 0;
    const bool queued = s.enqueue(std::move(d), opts.max_queued_messages, !live);
    if (!queued) {
        counters.publish_dropped.fetch_add(1, std::memory_order_relaxed);
        if (t && qos_n) t->refused.store(true, std::memory_order_relaxed);
    } else if (qos_n && s.stored) {
        persist_delivery(s, s.queue.back(), t);
    }
    if (s.conn == nullptr) return;
    if (live && s.queue.size() >= high_water()) apply_pressure(s, *m);
    if (queued) s.conn->schedule_pump();
}

void shard::apply_pressure(session& s, const message& m) {
    if (m.publisher_session == 0 || m.publisher_session == s.id()) return;
    const std::pair<unsigned, std::uint64_t> who{m.origin_shard, m.publisher_session};
    auto& list = s.paused_publishers;
    if (std::find(list.begin(), list.end(), who) != list.end()) return;
    list.push_back(who);
    if (who.first == index) {
        pause_publisher(who.second, true);
    } else {
        pause_outbox_[who.first].emplace_back(who.second, true);
        schedule_flush();
    }
}

void shard::release_pressure(session& s) {
    for (const auto& [sh, sid] : s.paused_publishers) {
        if (sh == index) {
            pause_publisher(sid, false);
        } else {
            pause_outbox_[sh].emplace_back(sid, false);
            schedule_flush();
        }
    }
    s.paused_publishers.clear();
}

void shard::pause_publisher(std::uint64_t session_id, bool pause) {
    auto it = sessions.find(session_id);
    if (it == sessions.end() || it->second->conn == nullptr) return;
    if (pause) it->second->conn->pause_reading();
    else it->second->conn->resume_reading();
}

void shard::deliver_retained(session& s, std::string_view filter, const subscription_options& o) {
    const auto now = clock::now();
    boost::container::small_vector<std::uint32_t, 1> ids;
    if (o.subscription_id != 0) ids.push_back(o.subscription_id);
    for (const auto& [name, m] : retained) {
        if (m->payload.empty() || !topic::matches(filter, name) || m->expired(now)) continue;
        if (o.no_local && m->publisher_session == s.id()) continue;
        deliver_to(s, m, nullptr, o.qos, true, ids, false);
    }
}

void shard::deliver_shared(const message_ptr& m, const ticket_ptr& t) {
    for (auto& [key, g] : shared) {
        if (g.members.empty() || !topic::matches(g.filter, m->topic)) continue;
        const auto& member = g.members[g.next++ % g.members.size()];
        boost::container::small_vector<std::uint32_t, 1> ids;
        if (member.opts.subscription_id != 0) ids.push_back(member.opts.subscription_id);
        if (member.shard == index) {
            if (auto it = sessions.find(member.session_id); it != sessions.end())
                deliver_to(*it->second, m, t, member.opts.qos, member.opts.retain_as_published && m->retain, ids);
            continue;
        }
        if (t) t->holds.fetch_add(1, std::memory_order_relaxed);
        directed_outbox_[member.shard].push_back({m, t, member.session_id, member.opts});
        schedule_flush();
    }
}

void shard::release(const ticket_ptr& t) {
    if (!t) return;
    if (t->holds.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (t->origin_shard == index) {
        complete(t);
    } else {
        ack_outbox_[t->origin_shard].push_back(t);
        schedule_flush();
    }
}

// A hold released by another thread (storage's writer): completions are
// queued for the origin shard and posted once per batch, not per message.
void shard::release_external(ticket_ptr t) {
    if (t->holds.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    bool post = false;
    {
        std::lock_guard lock(external_mutex_);
        post = external_acks_.empty();
        external_acks_.push_back(std::move(t));
    }
    if (!post) return;
    asio::post(ioc, [this] {
        {
            std::lock_guard lock(external_mutex_);
            std::swap(external_acks_, external_draining_);
        }
        for (const auto& done : external_draining_) complete(done);
        external_draining_.clear();
    });
}

void shard::complete(const ticket_ptr& t) {
    if (auto it = connections.find(t->connection_id); it != connections.end())
        it->second->send_publish_ack(*t);
}

void shard::schedule_flush() {
    if (flush_scheduled_) return;
    flush_scheduled_ = true;
    asio::post(ioc, [this] { flush(); });
}

void shard::add_dirty(std::shared_ptr<connection> c) {
    dirty_.push_back(std::move(c));
    schedule_flush();
}

// Messages from other shards are appended to the inbox in arrival order
// (so each publisher's order holds) and delivered a slice at a time: a large
// batch must not hold the shard for long, or its connections' writes (and
// every other handler) wait behind it.
void shard::accept_batch(std::vector<routed>& batch) {
    for (auto& r : batch) inbox_.push_back(std::move(r));
    if (draining_) return;
    draining_ = true;
    asio::post(ioc, [this] { drain_inbox(); });
}

void shard::drain_inbox() {
    for (std::size_t n = 0; n < inbox_slice && !inbox_.empty(); ++n) {
        routed r = inbox_.pop_front();
        deliver_local(r.msg, r.ticket);
        release(r.ticket);
    }
    if (inbox_.empty()) draining_ = false;
    else asio::post(ioc, [this] { drain_inbox(); });
}

// Runs once everything queued before it on this shard has been handled: one
// batch per other shard, and one write per connection that got output.
void shard::flush() {
    flush_scheduled_ = false;
    send_outboxes();
    write_dirty();
    // After the writes: what the observer does with the batch (the rules
    // engine evaluating it) does not hold up its delivery.
    if (owner.observer == nullptr) return;
    owner.observer->on_batch_end(index);
    // What that published on this thread (alert events, routed at once by
    // server::publish) goes out now, not after another round of the queue.
    // The flush it scheduled still runs and finds little or nothing to do.
    send_outboxes();
    write_dirty();
    owner.observer->on_batch_sent(index);
}

void shard::send_outboxes() {
    for (unsigned j = 0; j < outbox_.size(); ++j) {
        if (!outbox_[j].empty()) {
            shard& target = *owner.shards[j];
            asio::post(target.ioc, [&target, batch = std::move(outbox_[j])]() mutable { target.accept_batch(batch); });
            outbox_[j] = {};
        }
        if (!directed_outbox_[j].empty()) {
            shard& target = *owner.shards[j];
            asio::post(target.ioc, [&target, batch = std::move(directed_outbox_[j])] {
                for (const auto& d : batch) {
                    boost::container::small_vector<std::uint32_t, 1> ids;
                    if (d.opts.subscription_id != 0) ids.push_back(d.opts.subscription_id);
                    if (auto it = target.sessions.find(d.session_id); it != target.sessions.end()) {
                        target.deliver_to(*it->second, d.msg, d.ticket, d.opts.qos,
                                          d.opts.retain_as_published && d.msg->retain, ids);
                    } else {
                        // The member left between shard 0's choice and now.
                        target.counters.publish_dropped.fetch_add(1, std::memory_order_relaxed);
                    }
                    target.release(d.ticket);
                }
            });
            directed_outbox_[j] = {};
        }
        if (!pause_outbox_[j].empty()) {
            shard& target = *owner.shards[j];
            asio::post(target.ioc, [&target, batch = std::move(pause_outbox_[j])] {
                for (const auto& [sid, pause] : batch) target.pause_publisher(sid, pause);
            });
            pause_outbox_[j] = {};
        }
        if (!ack_outbox_[j].empty()) {
            shard& origin = *owner.shards[j];
            asio::post(origin.ioc, [&origin, batch = std::move(ack_outbox_[j])] {
                for (const auto& t : batch) origin.complete(t);
            });
            ack_outbox_[j] = {};
        }
    }
}

void shard::write_dirty() {
    // pump() may schedule another flush; it then runs after this one.
    std::swap(dirty_, pumping_);
    for (auto& c : pumping_) c->pump();
    pumping_.clear();
}

void shard::install(std::shared_ptr<session> s) {
    for (const auto& [key, o] : s->subscriptions) {
        if (key.starts_with("$share/")) {
            auto [group, filter] = split_shared_key(key, s->mount);
            owner.add_shared(std::move(group), std::move(filter), shared_member{index, s->id(), o});
        } else {
            trie.insert(key, s->id(), o);
        }
    }
    sessions.insert_or_assign(s->id(), std::move(s));
}

std::shared_ptr<session> shard::extract(std::uint64_t session_id) {
    auto it = sessions.find(session_id);
    if (it == sessions.end()) return nullptr;
    auto s = it->second;
    sessions.erase(it);
    if (s->conn != nullptr) s->conn->take_over();
    release_pressure(*s);
    for (const auto& [key, o] : s->subscriptions) {
        if (key.starts_with("$share/")) {
            auto [group, filter] = split_shared_key(key, s->mount);
            owner.remove_shared(std::move(group), std::move(filter), s->id());
        } else {
            trie.erase(key, s->id());
        }
    }
    return s;
}

void shard::end_session(std::shared_ptr<session> s, std::string_view why, bool unregister) {
    if (sessions.contains(s->id())) extract(s->id());
    spdlog::debug("session ended client_id=\"{}\" reason=\"{}\"", s->client_id(), why);
    // Holds on publishers' acknowledgements end with the session: the
    // messages were accepted for a session that no longer exists.
    release_pressure(*s);
    unpersist_session(*s);
    for (std::size_t i = 0; i < s->queue.size(); ++i)
        if (s->queue[i].hold) release(s->queue[i].hold);
    s->queue.clear();
    s->inflight.clear();
    if (!unregister) return;
    std::lock_guard lock(owner.registry_mutex);
    auto it = owner.registry.find(registry_key(s->identity, s->client_id()));
    if (it != owner.registry.end() && !it->second.busy && it->second.session_id == s->id())
        owner.registry.erase(it);
}

void shard::publish_will(session& s) {
    if (!s.will) return;
    auto w = std::move(*s.will);
    s.will.reset();
    s.will_due.reset();
    publish_will(std::move(w), s.id());
}

void shard::publish_will(will_spec w, std::uint64_t publisher) {
    auto m = make_message();
    m->topic = std::move(w.topic);
    m->payload = std::move(w.payload);
    m->forwarded_props = std::move(w.forwarded_props);
    if (w.message_expiry) m->expires_at = clock::now() + std::chrono::seconds(*w.message_expiry);
    m->qos = w.qos;
    m->retain = w.retain;
    if (w.retain) m->retain_seq = owner.next_retain_seq();
    m->publisher_session = publisher;
    m->origin_shard = index;
    spdlog::debug("will published topic=\"{}\"", m->topic);
    if (owner.observer != nullptr &&
        owner.observer->on_publish(m, ack_hold(nullptr)) != protocol::reason_code::success)
        return;
    if (owner.observer != nullptr) schedule_flush(); // on_batch_end
    if (m->retain) persist_retained(*m, nullptr);
    route(m, nullptr);
}

void shard::start_housekeeping() {
    tick_ = std::make_unique<asio::steady_timer>(ioc);
    asio::co_spawn(
        ioc,
        [this]() -> asio::awaitable<void> {
            for (;;) {
                tick_->expires_after(std::chrono::seconds(1));
                auto [ec] = co_await tick_->async_wait(token);
                if (ec) co_return;
                housekeeping(clock::now());
            }
        },
        [](std::exception_ptr e) { log_exception(e, "housekeeping"); });
}

void shard::housekeeping(clock::time_point now) {
    for (auto& [id, c] : connections) c->check_timeouts(now);

    std::vector<std::shared_ptr<session>> expired;
    std::uint64_t connected = 0, disconnected = 0, subs = 0;
    for (auto& [id, s] : sessions) {
        subs += s->subscriptions.size();
        if (s->conn != nullptr) {
            ++connected;
            continue;
        }
        ++disconnected;
        if (s->will_due && *s->will_due <= now) publish_will(*s);
        if (s->expiry_interval != 0xFFFFFFFFu &&
            now - s->offline_since >= std::chrono::seconds(s->expiry_interval))
            expired.push_back(s);
    }
    for (auto& s : expired) {
        publish_will(*s); // the session ends: a delayed will goes now
        end_session(s, "expired", true);
        counters.clients_expired.fetch_add(1, std::memory_order_relaxed);
        --disconnected;
    }
    counters.clients_connected.store(connected, std::memory_order_relaxed);
    counters.clients_disconnected.store(disconnected, std::memory_order_relaxed);
    counters.subscriptions.store(subs, std::memory_order_relaxed);
    // Tombstones older than the previous sweep can no longer be overtaken by
    // an older retained message still on its way between shards.
    std::uint64_t live_retained = 0;
    if (now - last_sweep_ >= std::chrono::seconds(10)) {
        std::erase_if(retained, [&](const auto& kv) {
            return kv.second->payload.empty() && kv.second->retain_seq <= swept_retain_seq_;
        });
        swept_retain_seq_ = owner.retain_seq.load(std::memory_order_relaxed);
        last_sweep_ = now;
    }
    for (const auto& [name, m] : retained) live_retained += m->payload.empty() ? 0 : 1;
    counters.retained.store(live_retained, std::memory_order_relaxed);

    if (index == 0 && opts.sys_interval.count() > 0 && now - owner.last_sys >= opts.sys_interval)
        owner.publish_sys();
}

void shard::shutdown() {
    if (tick_) tick_->cancel();
    std::vector<connection*> all;
    for (auto& [id, c] : connections) all.push_back(c);
    for (auto* c : all) c->close(protocol::reason_code::server_shutting_down, "server shutting down", false);
}

// ---- core -----------------------------------------------------------------

tenant_usage& core::usage_of(const std::string& tenant) {
    std::lock_guard lock(tenants_mutex);
    auto& u = tenants[tenant];
    if (!u) u = std::make_unique<tenant_usage>();
    return *u;
}

core::core(options o, authenticator* a, publish_observer* p, state_store* st)
    : opts(std::move(o)), auth(a), observer(p), store(st) {}

void core::add_shared(std::string group_key, std::string filter, shared_member m) {
    shard& s0 = *shards[0];
    asio::post(s0.ioc, [&s0, group_key = std::move(group_key), filter = std::move(filter), m] {
        auto& g = s0.shared[group_key + '\x1f' + filter];
        g.filter = filter;
        auto it = std::find_if(g.members.begin(), g.members.end(),
                               [&](const shared_member& x) { return x.session_id == m.session_id; });
        if (it != g.members.end()) *it = m;
        else g.members.push_back(m);
    });
}

void core::remove_shared(std::string group_key, std::string filter, std::uint64_t session_id) {
    shard& s0 = *shards[0];
    asio::post(s0.ioc, [&s0, key = std::move(group_key) + '\x1f' + filter, session_id] {
        auto it = s0.shared.find(key);
        if (it == s0.shared.end()) return;
        std::erase_if(it->second.members, [&](const shared_member& x) { return x.session_id == session_id; });
        if (it->second.members.empty()) s0.shared.erase(it);
    });
}

sys_stats core::counters_snapshot() const {
    const auto now = clock::now();
    sys_stats st;
    st.version = PULSEGATE_VERSION;
    st.uptime_seconds = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(now - started_at).count());
    for (const auto& sh : shards) {
        const auto& c = sh->counters;
        auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
        st.clients_connected += get(c.clients_connected);
        st.clients_disconnected += get(c.clients_disconnected);
        st.clients_expired += get(c.clients_expired);
        st.subscriptions += get(c.subscriptions);
        st.messages_received += get(c.messages_received);
        st.messages_sent += get(c.messages_sent);
        st.publish_messages_received += get(c.publish_received);
        st.publish_messages_sent += get(c.publish_sent);
        st.publish_messages_dropped += get(c.publish_dropped);
        st.publish_bytes_received += get(c.publish_bytes_received);
        st.publish_bytes_sent += get(c.publish_bytes_sent);
        st.bytes_received += get(c.bytes_received);
        st.bytes_sent += get(c.bytes_sent);
        st.sockets += get(c.connections_total);
        st.rate_limited += get(c.rate_limited);
        st.tenant_connections_refused += get(c.tenant_connections_refused);
        st.tenant_publishes_refused += get(c.tenant_publishes_refused);
    }
    st.connections = st.sockets;
    // Every shard holds every retained message: shard 0's count is the count.
    if (!shards.empty()) st.retained_messages = shards[0]->counters.retained.load(std::memory_order_relaxed);
    return st;
}

void core::publish_sys() {
    const auto now = clock::now();
    const double elapsed = std::chrono::duration<double>(now - last_sys).count();
    last_sys = now;
    sys_stats st = counters_snapshot();
    st.retained_messages = 0;
    shard& s0 = *shards[0];
    for (const auto& [name, m] : s0.retained) {
        if (m->payload.empty()) continue;
        ++st.retained_messages;
        st.stored_bytes += m->payload.size();
    }
    st.stored_messages = st.retained_messages;
    loads.update(st, elapsed);
    render_sys_topics(st, loads, [&](std::string_view topic, std::string_view payload) {
        auto m = make_message();
        m->topic.assign(topic);
        m->payload.assign(payload);
        m->retain = true;
        m->retain_seq = next_retain_seq();
        s0.route(m, nullptr);
    });
}

} // namespace detail

// ---- server ---------------------------------------------------------------

namespace {

// "host:port", "[v6]:port" or ":port" (all addresses).
detail::tcp::endpoint parse_listen(const std::string& spec) {
    const auto colon = spec.rfind(':');
    if (colon == std::string::npos)
        throw std::invalid_argument("listen address \"" + spec + "\" has no port (host:port)");
    std::string host = spec.substr(0, colon);
    const std::string port_text = spec.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) host = "0.0.0.0";
    if (host == "localhost") host = "127.0.0.1";
    unsigned long port = 0;
    try {
        std::size_t used = 0;
        port = std::stoul(port_text, &used);
        if (used != port_text.size() || port > 65535) throw std::out_of_range("port");
    } catch (const std::exception&) {
        throw std::invalid_argument("listen address \"" + spec + "\": port must be 0..65535");
    }
    boost::system::error_code ec;
    auto addr = boost::asio::ip::make_address(host, ec);
    if (ec) throw std::invalid_argument("listen address \"" + spec + "\": \"" + host + "\" is not an IP address");
    return {addr, static_cast<unsigned short>(port)};
}

} // namespace

struct server::impl {
    detail::core core;
    struct listener {
        std::unique_ptr<detail::tcp::acceptor> acceptor;
        bool tls = false;
    };
    std::vector<listener> listeners;
    std::vector<detail::tcp::endpoint> endpoints;
    std::vector<detail::tcp::endpoint> tls_endpoints;
    std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards;
    int spare_fd = -1;
    // Accept failures come by the thousand a second at the descriptor
    // limit: a line every 10 s, with the count. Shard 0's (the accept loops').
    common::log_limiter accept_warnings{std::chrono::seconds(10)};
    bool started = false;
    bool stopped = false;

    impl(options o, authenticator* a, publish_observer* p, state_store* st) : core(std::move(o), a, p, st) {}

    std::atomic<unsigned> next_shard{0};

    boost::asio::awaitable<void> accept_loop(detail::tcp::acceptor& acc, bool tls);
    // The TLS handshake of an accepted connection, on its shard; then serve().
    boost::asio::awaitable<void> handshake(detail::shard& target, detail::tcp::socket sock);
    detail::shard& pick_shard() { return *core.shards[next_shard.fetch_add(1) % core.shards.size()]; }
    // Runs a connection over `s` on `target` (its thread); counted from here.
    void serve(detail::shard& target, std::unique_ptr<stream> s);
};

void server::impl::serve(detail::shard& target, std::unique_ptr<stream> s) {
    namespace asio = boost::asio;
    core.connection_count.fetch_add(1, std::memory_order_relaxed);
    asio::co_spawn(
        target.ioc,
        [&target, s = std::move(s)]() mutable -> asio::awaitable<void> {
            auto c = std::make_shared<detail::connection>(target, std::move(s), target.owner.next_id.fetch_add(1));
            co_await c->run();
        },
        [](std::exception_ptr e) { detail::log_exception(e, "connection"); });
}

boost::asio::awaitable<void> server::impl::handshake(detail::shard& target, detail::tcp::socket sock) {
    namespace asio = boost::asio;
    auto ctx = core.opts.tls->current();
    auto s = std::make_unique<tls_socket>(std::move(sock), *ctx);
    // A client that does not finish the handshake within the connect
    // timeout is closed, as one that sends no CONNECT.
    // (`waiting` tells the timer's handler, on this same thread, that the
    // socket is still here: it may run after the handshake, even after this
    // coroutine.)
    auto waiting = std::make_shared<tls_socket*>(s.get());
    asio::steady_timer deadline(target.ioc, target.opts.connect_timeout);
    deadline.async_wait([w = std::weak_ptr<tls_socket*>(waiting)](boost::system::error_code ec) {
        boost::system::error_code ignored;
        if (auto p = w.lock(); p && !ec) (*p)->next_layer().close(ignored);
    });
    auto [ec] = co_await s->async_handshake(asio::ssl::stream_base::server, detail::token);
    waiting.reset();
    deadline.cancel();
    if (ec) {
        target.counters.refused.fetch_add(1, std::memory_order_relaxed);
        boost::system::error_code ignored;
        const auto ep = s->next_layer().remote_endpoint(ignored);
        spdlog::info("tls handshake failed addr={}:{} error=\"{}\"", ep.address().to_string(), ep.port(),
                     ec.message());
        co_return;
    }
    if (core.stopping) co_return;
    serve(target, make_tls_stream(std::move(s), std::move(ctx)));
}

boost::asio::awaitable<void> server::impl::accept_loop(detail::tcp::acceptor& acc, bool tls) {
    namespace asio = boost::asio;
    for (;;) {
        auto& target = pick_shard();
        detail::tcp::socket sock(target.ioc);
        auto [ec] = co_await acc.async_accept(sock, detail::token);
        if (ec == asio::error::operation_aborted || core.stopping) co_return;
        if (ec) {
            if (ec == asio::error::no_descriptors || ec.value() == ENFILE) {
                // At the descriptor limit: free the spare, take the waiting
                // connection and close it at once, take the spare back. The
                // client sees a closed connection instead of a hanging one.
                if (spare_fd >= 0) ::close(spare_fd);
                const int fd = ::accept(acc.native_handle(), nullptr, nullptr);
                if (fd >= 0) ::close(fd);
                spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
                core.shards[0]->counters.refused.fetch_add(1, std::memory_order_relaxed);
                if (const auto quiet = accept_warnings.admit(std::chrono::steady_clock::now()))
                    spdlog::warn("connection refused: out of file descriptors (raise ulimit -n) "
                                 "more_since_last_warning={}",
                                 *quiet);
            } else if (const auto quiet = accept_warnings.admit(std::chrono::steady_clock::now())) {
                spdlog::warn("accept failed: {} more_since_last_warning={}", ec.message(), *quiet);
            }
            asio::steady_timer t(acc.get_executor(), std::chrono::milliseconds(ec == asio::error::no_descriptors ? 0 : 10));
            co_await t.async_wait(detail::token);
            continue;
        }
        if (!tls) {
            serve(target, make_tcp_stream(std::move(sock)));
            continue;
        }
        asio::co_spawn(target.ioc, handshake(target, std::move(sock)),
                       [](std::exception_ptr e) { detail::log_exception(e, "tls handshake"); });
    }
}

bool server::adopt(stream_factory make) {
    if (!impl_->started || impl_->core.stopping) return false;
    auto& target = impl_->pick_shard();
    boost::asio::post(target.ioc, [this, &target, make = std::move(make)] {
        if (impl_->core.stopping) return;
        if (auto s = make(target.ioc)) impl_->serve(target, std::move(s));
    });
    return true;
}

server::server(options opts, authenticator* auth, publish_observer* observer, state_store* store)
    : impl_(std::make_unique<impl>(std::move(opts), auth, observer, store)) {}

server::~server() {
    stop();
    join();
    if (impl_->spare_fd >= 0) ::close(impl_->spare_fd);
}

void server::start() {
    namespace asio = boost::asio;
    auto& c = impl_->core;
    const unsigned n = shard_count();
    c.shards.reserve(n);
    for (unsigned i = 0; i < n; ++i) c.pools.push_back(std::make_unique<message_pool>());
    for (unsigned i = 0; i < n; ++i) c.shards.push_back(std::make_unique<detail::shard>(c, i));
    if (c.store != nullptr) c.restore(*c.store);
    impl_->spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

    auto& s0 = *c.shards[0];
    auto bind = [&](const std::string& spec, bool tls) {
        const auto ep = parse_listen(spec);
        auto acc = std::make_unique<detail::tcp::acceptor>(s0.ioc);
        boost::system::error_code ec;
        acc->open(ep.protocol(), ec);
        if (!ec) acc->set_option(detail::tcp::acceptor::reuse_address(true), ec);
        if (!ec) acc->bind(ep, ec);
        if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
        if (ec) throw std::system_error(ec, "cannot listen on " + spec);
        (tls ? impl_->tls_endpoints : impl_->endpoints).push_back(acc->local_endpoint());
        impl_->listeners.push_back({std::move(acc), tls});
    };
    for (const auto& spec : c.opts.listen) bind(spec, false);
    if (c.opts.tls != nullptr)
        for (const auto& spec : c.opts.tls_listen) bind(spec, true);
    for (auto& l : impl_->listeners) {
        asio::co_spawn(s0.ioc, impl_->accept_loop(*l.acceptor, l.tls),
                       [](std::exception_ptr e) { detail::log_exception(e, "accept loop"); });
    }
    for (auto& sh : c.shards) {
        impl_->guards.push_back(asio::make_work_guard(sh->ioc));
        asio::post(sh->ioc, [s = sh.get()] { s->start_housekeeping(); });
        sh->thread = std::thread([s = sh.get()] {
            common::name_this_thread(fmt::format("pg-shard-{}", s->index));
            for (;;) {
                try {
                    s->ioc.run();
                    return;
                } catch (const std::exception& e) {
                    // A handler threw: log and keep the shard serving.
                    spdlog::error("shard {} handler failed: {}", s->index, e.what());
                }
            }
        });
    }
    impl_->started = true;
    spdlog::info("broker started shards={}", n);
}

std::vector<boost::asio::ip::tcp::endpoint> server::local_endpoints() const { return impl_->endpoints; }

std::vector<boost::asio::ip::tcp::endpoint> server::tls_endpoints() const { return impl_->tls_endpoints; }

void server::stop() {
    namespace asio = boost::asio;
    auto& c = impl_->core;
    if (!impl_->started || impl_->stopped) return;
    impl_->stopped = true;
    c.stopping = true;
    auto& s0 = *c.shards[0];
    asio::post(s0.ioc, [this] {
        for (auto& l : impl_->listeners) {
            boost::system::error_code ec;
            l.acceptor->close(ec);
        }
    });
    for (auto& sh : c.shards) asio::post(sh->ioc, [s = sh.get()] { s->shutdown(); });
    impl_->guards.clear();
    // Give connections a moment to write their DISCONNECT, then stop.
    const auto deadline = broker::clock::now() + std::chrono::seconds(2);
    while (c.connection_count.load() != 0 && broker::clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    for (auto& sh : c.shards) sh->ioc.stop();
}

void server::join() {
    for (auto& sh : impl_->core.shards)
        if (sh->thread.joinable()) sh->thread.join();
}

void server::reload(const options& opts) {
    auto& c = impl_->core;
    for (auto& sh : c.shards) {
        boost::asio::post(sh->ioc, [s = sh.get(), opts] {
            auto keep_listen = s->opts.listen;
            auto keep_shards = s->opts.shards;
            s->opts = opts;
            s->opts.listen = std::move(keep_listen);
            s->opts.shards = keep_shards;
        });
    }
}

void server::release_hold(std::shared_ptr<void> token, bool ok) {
    if (!token) return;
    auto t = std::static_pointer_cast<ack_ticket>(std::move(token));
    if (!ok) t->refused.store(true, std::memory_order_relaxed);
    auto& c = impl_->core;
    c.shards.at(t->origin_shard)->release_external(std::move(t));
}

void server::disconnect_if(std::function<bool(const client_identity&)> match, std::string reason) {
    auto shared = std::make_shared<const std::function<bool(const client_identity&)>>(std::move(match));
    auto why = std::make_shared<const std::string>(std::move(reason));
    for (auto& sh : impl_->core.shards) {
        boost::asio::post(sh->ioc, [s = sh.get(), shared, why] {
            // close() detaches the session but leaves the connection in the
            // map until it has written its DISCONNECT: collect first.
            std::vector<detail::connection*> doomed;
            for (auto& [id, c] : s->connections)
                if (const auto* who = c->identity(); who != nullptr && (*shared)(*who)) doomed.push_back(c);
            for (auto* c : doomed) c->close(protocol::reason_code::administrative_action, *why);
        });
    }
}

unsigned server::add_tap(message_tap& tap, std::vector<std::string> filters) {
    assert(!impl_->started);
    for ([[maybe_unused]] const auto& f : filters) assert(!topic::check_filter(f) && !topic::parse_shared(f));
    impl_->core.taps.push_back({&tap, std::move(filters)});
    return static_cast<unsigned>(impl_->core.taps.size());
}

void server::publish(std::string topic, std::string payload, std::uint8_t qos, bool retain, unsigned from_tap) {
    auto m = make_message();
    m->from_tap = from_tap;
    m->topic = std::move(topic);
    m->payload = std::move(payload);
    m->qos = qos;
    m->retain = retain;
    // Spread over the shards by topic: one topic's messages stay in order.
    auto& shards = impl_->core.shards;
    auto& sh = *shards[std::hash<std::string>{}(m->topic) % shards.size()];
    // Called on that shard's thread (an alert event of a batch it evaluated)
    // with none of the earlier calls still queued there: routed right away.
    if (sh.publishes_queued.load(std::memory_order_acquire) == 0 && sh.ioc.get_executor().running_in_this_thread()) {
        sh.route_published(std::move(m));
        return;
    }
    sh.publishes_queued.fetch_add(1, std::memory_order_release);
    boost::asio::post(sh.ioc, [s = &sh, m = std::move(m)]() mutable {
        s->route_published(std::move(m));
        s->publishes_queued.fetch_sub(1, std::memory_order_release);
    });
}

void detail::shard::route_published(mutable_message_ptr m) {
    m->origin_shard = index;
    if (m->retain) {
        m->retain_seq = owner.next_retain_seq();
        persist_retained(*m, nullptr);
    }
    route(message_ptr(std::move(m)), nullptr);
}

sys_stats server::stats() const { return impl_->core.counters_snapshot(); }

unsigned server::shard_count() const noexcept {
    const unsigned n = impl_->core.opts.shards;
    return n != 0 ? n : std::max(1u, std::thread::hardware_concurrency());
}

std::shared_ptr<void> ack_hold::take() const {
    if (ticket_ == nullptr || !*ticket_) return {};
    (*ticket_)->holds.fetch_add(1, std::memory_order_relaxed);
    return *ticket_;
}

} // namespace pulsegate::broker
