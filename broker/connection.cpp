// One MQTT connection: CONNECT, the packet loop, acknowledgements, output.
// See core.hpp for who owns what.

#include "broker/core.hpp"
#include "broker/observer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <random>

namespace pulsegate::broker::detail {

namespace p = protocol;
using p::reason_code;
namespace {

constexpr auto token = asio::as_tuple(asio::use_awaitable);

// Largest output a connection encodes ahead of the socket; beyond it the
// session queue keeps the rest (and applies its bound).
constexpr std::size_t output_budget = 256 * 1024;
// Payloads up to this size are copied next to their header (one buffer);
// larger ones are referenced from the shared message (gathered write).
constexpr std::size_t inline_payload_max = 512;

std::string random_client_id() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return fmt::format("pg-{:016x}", rng());
}

// The properties a subscriber receives unchanged, encoded once.
std::string forwarded_properties(const p::properties& in) {
    p::properties fwd;
    fwd.payload_format_indicator = in.payload_format_indicator;
    fwd.content_type = in.content_type;
    fwd.response_topic = in.response_topic;
    fwd.correlation_data = in.correlation_data;
    fwd.user_properties = in.user_properties;
    std::string out;
    p::encode_properties(fwd, out);
    return out;
}

bool is_v5(p::protocol_version v) { return v == p::protocol_version::v5; }

} // namespace

connection::connection(shard& owner, std::unique_ptr<stream> s, std::uint64_t id)
    : shard_(owner), stream_(std::move(s)), id_(id), remote_(stream_->remote_address()),
      certificate_(stream_->certificate_identity()) {
    opened_at_ = last_rx_ = clock::now();
    const auto& o = shard_.opts;
    const auto bucket = [&](double rate) { return token_bucket(rate, rate * o.publish_burst_s, opened_at_); };
    if (o.max_publish_rate > 0) publish_rate_ = bucket(o.max_publish_rate);
    if (o.max_publish_byte_rate > 0) publish_bytes_ = bucket(double(o.max_publish_byte_rate));
    shard_.connections.emplace(id_, this);
    shard_.counters.connections_total.fetch_add(1, std::memory_order_relaxed);
}

connection::~connection() {
    if (tenant_ != nullptr) tenant_->connections.fetch_sub(1, std::memory_order_relaxed);
    shard_.connections.erase(id_);
    shard_.owner.connection_count.fetch_sub(1, std::memory_order_relaxed);
}

asio::awaitable<void> connection::run() {
    auto self = shared_from_this();
    // CONNECT is a coroutine (it waits for the registry and other shards);
    // the packet loop is callbacks, so an idle connection holds no frame.
    if (co_await async_connect_phase()) start_reading();
}

asio::awaitable<bool> connection::async_connect_phase() {
    const auto& o = shard_.opts;

    // CONNECT: read into partial_ until the first packet is whole.
    p::frame_header h;
    for (;;) {
        auto f = p::frame(partial_, o.max_packet_size);
        if (!f) {
            spdlog::debug("connect refused addr={} reason=\"{}\"", remote_, f.error().detail);
            finish_close();
            co_return false;
        }
        if (*f && (*f)->total_size() <= partial_.size()) {
            h = **f;
            // Keep alive counts from the CONNECT; the connect timeout ends here.
            last_rx_ = clock::now();
            connect_seen_ = true;
            break;
        }
        const auto old = partial_.size();
        partial_.resize(old + 4096);
        auto [ec, n] = co_await async_read(*stream_, std::span(partial_).subspan(old), token);
        partial_.resize(old + n);
        if (ec || closed_) {
            finish_close();
            co_return false;
        }
        shard_.counters.bytes_received.fetch_add(n, std::memory_order_relaxed);
    }
    if (h.type() != p::packet_type::connect) {
        spdlog::debug("connection closed addr={} reason=\"first packet is not CONNECT\"", remote_);
        finish_close();
        co_return false;
    }
    auto body = std::span<const std::uint8_t>(partial_).subspan(h.header_size, h.remaining_length);
    auto c = p::decode_connect(h.first_byte, body);
    if (!c) {
        // Answer in the version the client asked for when it can be read.
        const bool v5 = body.size() > 6 && body[6] == 5;
        if (c.error().code == reason_code::unsupported_protocol_version || v5) {
            version_ = v5 ? p::protocol_version::v5 : p::protocol_version::v311;
            p::connack ack;
            ack.code = c.error().code;
            if (v5) ack.props.reason_string = c.error().detail;
            send(ack);
        }
        spdlog::info("connect refused addr={} reason=\"{}\"", remote_, c.error().detail);
        begin_closing();
        start_write();
        co_return false;
    }
    shard_.counters.messages_received.fetch_add(1, std::memory_order_relaxed);
    if (!co_await async_handle_connect(std::move(*c))) co_return false;
    partial_.erase(partial_.begin(), partial_.begin() + static_cast<std::ptrdiff_t>(h.total_size()));
    if (!partial_.empty()) {
        const auto used = process(partial_);
        if (used == std::string::npos) co_return false;
        partial_.erase(partial_.begin(), partial_.begin() + static_cast<std::ptrdiff_t>(used));
    }
    if (partial_.empty()) std::vector<std::uint8_t>().swap(partial_); // idle connections hold no buffer
    co_return true;
}

// The packet loop. The stream reads into the shard's scratch buffer, so an
// idle connection holds no read buffer and a busy one hands every packet of a
// read to process() at once. Only the tail of an incomplete packet is kept
// (partial_).
void connection::start_reading() {
    stream_->async_read(shard_.scratch,
                        asio::bind_allocator(asio::recycling_allocator<void>(),
                                             [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                                                 self->on_read(ec, n);
                                             }));
}

void connection::on_read(boost::system::error_code ec, std::size_t n) {
    if (!ec && !closing_) {
        shard_.counters.bytes_received.fetch_add(n, std::memory_order_relaxed);
        last_rx_ = clock::now();
        auto& scratch = shard_.scratch;
        std::span<const std::uint8_t> data(scratch.data(), n);
        std::size_t used = 0;
        if (partial_.empty()) {
            used = process(data);
            if (used != std::string::npos)
                partial_.assign(data.begin() + static_cast<std::ptrdiff_t>(used), data.end());
        } else {
            partial_.insert(partial_.end(), data.begin(), data.end());
            used = process(partial_);
            if (used != std::string::npos)
                partial_.erase(partial_.begin(), partial_.begin() + static_cast<std::ptrdiff_t>(used));
        }
        // An idle connection holds no buffer; a busy one keeps its capacity.
        if (partial_.empty() && partial_.capacity() != 0 && n < scratch.size() / 2)
            std::vector<std::uint8_t>().swap(partial_);
        if (used != std::string::npos && !closing_) {
            // Paused: no read in flight, so the connection keeps itself
            // alive until resume_reading() restarts it.
            if (pauses_ > 0) parked_ = shared_from_this();
            else start_reading();
            return;
        }
    }
    if (!closing_) {
        // The peer went away without DISCONNECT: abnormal, the will goes.
        begin_closing();
        detach_session(true);
        finish_close();
    }
}

namespace {

// A deferred authentication: the answer is posted to the shard, which wakes
// the CONNECT coroutine by cancelling the timer it waits on (whose expiry is
// the connect timeout).
struct pending_auth final : auth_completion, std::enable_shared_from_this<pending_auth> {
    explicit pending_auth(asio::io_context& ioc) : timer(ioc) {}
    void complete(auth_result r) override {
        asio::post(timer.get_executor(), [self = shared_from_this(), r = std::move(r)]() mutable {
            self->result = std::move(r);
            self->timer.cancel();
        });
    }
    asio::steady_timer timer;
    std::optional<auth_result> result;
};

} // namespace

asio::awaitable<std::optional<auth_result>> connection::async_authenticate(const p::connect& c) {
    auto pending = std::make_shared<pending_auth>(shard_.ioc);
    const connect_info info{c.client_id, c.username, c.password, c.version, remote_, certificate_};
    if (auto now = shard_.owner.auth->authenticate(info, pending)) co_return now;
    pending->timer.expires_at(opened_at_ + shard_.opts.connect_timeout);
    // An answer posted before this wait starts still finds it: the post runs
    // after this coroutine suspends (same thread).
    co_await pending->timer.async_wait(token);
    co_return std::move(pending->result);
}

asio::awaitable<bool> connection::async_handle_connect(p::connect c) {
    const auto& o = shard_.opts;
    core& owner = shard_.owner;
    version_ = c.version;
    request_problem_info_ = c.props.request_problem_information.value_or(1) != 0;

    p::connack ack;
    auto refuse = [&](reason_code rc, std::string_view why) {
        ack.code = rc;
        if (is_v5(version_) && request_problem_info_) ack.props.reason_string = why;
        send(ack);
        spdlog::info("connect refused addr={} client_id=\"{}\" code=0x{:02x} reason=\"{}\"", remote_,
                     c.client_id, static_cast<unsigned>(rc), why);
        shard_.counters.refused.fetch_add(1, std::memory_order_relaxed);
        begin_closing();
        start_write();
    };

    if (c.props.authentication_method) {
        refuse(reason_code::bad_authentication_method, "enhanced authentication is not supported");
        co_return false;
    }
    if (o.max_connections != 0 &&
        owner.connection_count.load(std::memory_order_relaxed) > o.max_connections) {
        refuse(is_v5(version_) ? reason_code::quota_exceeded : reason_code::server_unavailable,
               "too many connections ([mqtt] max_connections)");
        co_return false;
    }

    client_identity who;
    if (owner.auth != nullptr) {
        auto r = co_await async_authenticate(c);
        if (!r) {
            refuse(reason_code::server_unavailable, "authentication did not answer in time");
            co_return false;
        }
        if (auto* rc = std::get_if<reason_code>(&*r)) {
            refuse(*rc, "authentication failed");
            co_return false;
        }
        who = std::get<client_identity>(std::move(*r));
    } else if (!o.allow_anonymous) {
        refuse(reason_code::not_authorized, "anonymous access is disabled ([auth] allow_anonymous)");
        co_return false;
    } else {
        who.tenant = o.anonymous_tenant;
        who.principal = "anonymous";
        who.anonymous = true;
    }
    const std::string mount = who.tenant.empty() ? std::string{} : "t/" + who.tenant + "/";

    std::string client_id(c.client_id);
    bool assigned = false;
    if (client_id.empty()) {
        if (!is_v5(version_) && !c.clean_start) {
            refuse(reason_code::client_identifier_not_valid,
                   "an empty client id needs clean session");
            co_return false;
        }
        client_id = random_client_id();
        assigned = true;
    }

    std::optional<will_spec> will;
    if (c.will) {
        const auto& w = *c.will;
        if (auto bad = topic::check_name(w.topic, owner.topic_limits())) {
            refuse(reason_code::topic_name_invalid, topic::to_string(*bad));
            co_return false;
        }
        if ((!mount.empty() && w.topic.starts_with('$')) || w.topic.starts_with("$SYS") ||
            (owner.auth != nullptr && !owner.auth->may_publish(who, w.topic))) {
            if (owner.auth != nullptr) owner.auth->denied(who, w.topic, false);
            refuse(reason_code::not_authorized, "will topic not allowed");
            co_return false;
        }
        will_spec ws;
        ws.topic = mount + std::string(w.topic);
        ws.payload.assign(w.payload);
        if (is_v5(version_)) {
            ws.forwarded_props = forwarded_properties(w.props);
            ws.message_expiry = w.props.message_expiry_interval;
            ws.delay_s = w.props.will_delay_interval.value_or(0);
        }
        ws.qos = w.qos;
        ws.retain = w.retain;
        will = std::move(ws);
    }

    keep_alive_ = c.keep_alive;
    if (o.max_keepalive != 0 && (keep_alive_ == 0 || keep_alive_ > o.max_keepalive)) {
        if (!is_v5(version_)) {
            // 3.1.1 cannot be told a shorter keep alive; lowering it silently
            // would drop a client that follows the protocol. Refuse, as
            // Mosquitto does.
            refuse(reason_code::client_identifier_not_valid, "keep alive above [mqtt] max_keepalive");
            co_return false;
        }
        keep_alive_ = o.max_keepalive;
        ack.props.server_keep_alive = keep_alive_;
    }
    std::uint32_t expiry = 0;
    if (is_v5(version_)) {
        expiry = c.props.session_expiry_interval.value_or(0);
        if (expiry > o.max_session_expiry) {
            expiry = o.max_session_expiry;
            ack.props.session_expiry_interval = expiry;
        }
        client_max_packet_ = c.props.maximum_packet_size.value_or(0xFFFFFFFFu);
        client_receive_max_ = c.props.receive_maximum.value_or(65535);
        client_alias_max_ = c.props.topic_alias_maximum.value_or(0);
    } else {
        expiry = c.clean_start ? 0 : 0xFFFFFFFFu;
    }

    // Claim the client id in the registry; a CONNECT for the same id in
    // progress elsewhere makes us wait for it.
    const auto key = registry_key(who, client_id);
    std::optional<registry_entry> prev;
    for (int attempt = 0;; ++attempt) {
        {
            std::lock_guard lock(owner.registry_mutex);
            auto [it, inserted] = owner.registry.try_emplace(key);
            if (inserted || !it->second.busy) {
                if (!inserted) prev = it->second;
                it->second.busy = true;
                it->second.shard = shard_.index;
                break;
            }
        }
        if (attempt == 5000) {
            refuse(reason_code::server_busy, "client id busy");
            co_return false;
        }
        asio::steady_timer t(stream_->get_executor(), std::chrono::milliseconds(1));
        co_await t.async_wait(token);
    }

    std::shared_ptr<session> s;
    if (prev && prev->shard != shard_.index && handoffs_ < 3) {
        // The session lives on another shard. Sessions do not move: this
        // connection moves to the session's shard and starts over there, so
        // the session keeps receiving (or queueing) without a gap.
        if (auto moved = stream_->rebind(owner.shards[prev->shard]->ioc)) {
            {
                std::lock_guard lock(owner.registry_mutex);
                owner.registry[key] = *prev; // not busy: the CONNECT is replayed there
            }
            hand_off(*owner.shards[prev->shard], std::move(moved));
            co_return false;
        }
    }
    // The tenant's quotas (after any hand-off: counted on the shard that
    // serves the client). A takeover (the client id is connected now: the
    // old connection is about to close) may pass a full connection quota.
    const auto max_conn = who.tenant_max_connections != 0 ? who.tenant_max_connections : o.tenant_max_connections;
    tenant_rate_ = who.tenant_max_publish_rate != 0 ? who.tenant_max_publish_rate : o.tenant_max_publish_rate;
    if (!who.tenant.empty() && (max_conn != 0 || tenant_rate_ != 0) && tenant_ == nullptr) {
        auto& u = owner.usage_of(who.tenant);
        if (u.connections.fetch_add(1, std::memory_order_relaxed) >= max_conn && max_conn != 0 &&
            !(prev && co_await is_connected(*prev))) {
            u.connections.fetch_sub(1, std::memory_order_relaxed);
            {
                std::lock_guard lock(owner.registry_mutex);
                if (prev) owner.registry[key] = *prev;
                else owner.registry.erase(key);
            }
            shard_.counters.tenant_connections_refused.fetch_add(1, std::memory_order_relaxed);
            refuse(is_v5(version_) ? reason_code::quota_exceeded : reason_code::server_unavailable,
                   "the tenant's connection quota is used up");
            co_return false;
        }
        tenant_ = &u;
    }
    if (prev) {
        // Take the old session out of the shard that holds it: here, at once;
        // elsewhere (a stream that cannot move) with a hop.
        const bool clean = c.clean_start;
        const auto sid = prev->session_id;
        auto take = [clean, sid](shard& ps) -> std::shared_ptr<session> {
            auto old = ps.extract(sid);
            if (!old) return nullptr;
            // A session ends here if the new connection starts clean or if
            // it was to end with its connection (expiry 0).
            const bool ends = clean || old->clean_on_close();
            // MQTT 5 §3.1.4: the old will goes unless the session continues
            // and the will was delayed.
            if (old->will && (ends || old->will->delay_s == 0)) ps.publish_will(*old);
            old->will.reset();
            old->will_due.reset();
            if (ends) {
                ps.end_session(std::move(old), "taken over", false);
                return nullptr;
            }
            return old;
        };
        shard& ps = *owner.shards[prev->shard];
        if (&ps == &shard_) {
            s = take(ps);
        } else {
            s = co_await asio::co_spawn(
                ps.ioc, [&ps, take]() -> asio::awaitable<std::shared_ptr<session>> { co_return take(ps); },
                asio::use_awaitable);
        }
    }
    const bool session_present = s != nullptr;
    if (!s) s = std::make_shared<session>(client_id, owner.next_id.fetch_add(1));
    s->identity = std::move(who);
    s->mount = mount;
    s->version = version_;
    s->expiry_interval = expiry;
    s->will = will ? std::make_unique<will_spec>(std::move(*will)) : nullptr;
    s->will_due.reset();
    s->conn = this;
    session_ = s;
    shard_.install(s);
    shard_.persist_session(*s);
    {
        std::lock_guard lock(owner.registry_mutex);
        owner.registry[key] = registry_entry{shard_.index, s->id(), false};
    }

    ack.session_present = session_present;
    if (is_v5(version_)) {
        if (assigned) ack.props.assigned_client_identifier = client_id;
        if (o.receive_maximum != 65535) ack.props.receive_maximum = o.receive_maximum;
        if (o.topic_alias_maximum != 0) ack.props.topic_alias_maximum = o.topic_alias_maximum;
        ack.props.maximum_packet_size = o.max_packet_size;
    }
    send(ack);
    spdlog::info("client connected client_id=\"{}\" principal=\"{}\" tenant=\"{}\" addr={} protocol={} "
                 "clean_start={} session_present={} keep_alive={}",
                 client_id, s->identity.principal, s->identity.tenant, remote_,
                 is_v5(version_) ? "5" : "3.1.1", c.clean_start, session_present, keep_alive_);
    if (closing_) {
        detach_session(true);
        co_return false;
    }

    // Resend what was in flight when the session was last connected, with
    // the original packet ids (MQTT 5 §4.4), at most the new window at once:
    // pump() sends the rest as acknowledgements free the window.
    for (std::size_t i = 0; i < s->inflight.size(); ++i) s->inflight[i].sent = false;
    resend_pending_ = !s->inflight.empty();
    pump();
    co_return true;
}

void connection::hand_off(shard& target, std::unique_ptr<stream> moved) {
    spdlog::debug("connection moves to the session's shard addr={} from={} to={}", remote_, shard_.index,
                  target.index);
    // This object is done: the socket now belongs to `moved`, the bytes read
    // so far (the CONNECT and whatever followed) go with it.
    closing_ = closed_ = true;
    auto bytes = std::move(partial_);
    const unsigned hops = handoffs_ + 1;
    target.owner.connection_count.fetch_add(1, std::memory_order_relaxed);
    asio::co_spawn(
        target.ioc,
        [&target, st = std::move(moved), bytes = std::move(bytes), hops]() mutable -> asio::awaitable<void> {
            auto c = std::make_shared<connection>(target, std::move(st), target.owner.next_id.fetch_add(1));
            c->partial_ = std::move(bytes);
            c->handoffs_ = hops;
            co_await c->run();
        },
        [](std::exception_ptr e) {
            if (e) spdlog::error("connection hand-off failed");
        });
}

std::size_t connection::process(std::span<const std::uint8_t> data) {
    const auto& o = shard_.opts;
    std::size_t pos = 0;
    while (!closing_) {
        auto f = p::frame(data.subspan(pos), o.max_packet_size);
        if (!f) {
            close(f.error().code, f.error().detail);
            return std::string::npos;
        }
        if (!*f || (*f)->total_size() > data.size() - pos) break;
        const auto h = **f;
        shard_.counters.messages_received.fetch_add(1, std::memory_order_relaxed);
        if (h.type() == p::packet_type::connect) {
            close(reason_code::protocol_error, "second CONNECT");
            return std::string::npos;
        }
        auto pk = p::decode(h.first_byte, data.subspan(pos + h.header_size, h.remaining_length),
                            version_);
        if (!pk) {
            close(pk.error().code, pk.error().detail);
            return std::string::npos;
        }
        handle(*pk);
        pos += h.total_size();
    }
    return closing_ ? std::string::npos : pos;
}

void connection::handle(const p::packet& pk) {
    std::visit(
        [this](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, p::publish>) handle_publish(x);
            else if constexpr (std::is_same_v<T, p::ack>) handle_ack(x);
            else if constexpr (std::is_same_v<T, p::subscribe>) handle_subscribe(x);
            else if constexpr (std::is_same_v<T, p::unsubscribe>) handle_unsubscribe(x);
            else if constexpr (std::is_same_v<T, p::pingreq>) send(p::pingresp{});
            else if constexpr (std::is_same_v<T, p::disconnect>) handle_disconnect(x);
            else close(reason_code::protocol_error, "unexpected packet type from a client");
        },
        pk);
}

void connection::refuse(std::string_view what, reason_code code) {
    shard_.counters.refused.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("refused client_id=\"{}\" what=\"{}\" code=0x{:02x}", session_->client_id(), what,
                  static_cast<unsigned>(code));
}

void connection::handle_publish(const p::publish& pub) {
    const auto& o = shard_.opts;
    session& s = *session_;
    std::string_view topic = pub.topic;
    if (is_v5(version_) && pub.props.topic_alias) {
        const auto alias = *pub.props.topic_alias;
        if (alias == 0 || alias > o.topic_alias_maximum) {
            close(reason_code::topic_alias_invalid, "topic alias out of range");
            return;
        }
        if (!aliases_) aliases_ = std::make_unique<topic_aliases>();
        auto& rx_aliases_ = aliases_->rx;
        if (rx_aliases_.size() < o.topic_alias_maximum + 1u) rx_aliases_.resize(o.topic_alias_maximum + 1u);
        if (topic.empty()) {
            if (rx_aliases_[alias].empty()) {
                close(reason_code::protocol_error, "unknown topic alias");
                return;
            }
            topic = rx_aliases_[alias];
        } else {
            rx_aliases_[alias].assign(topic);
        }
    }
    if (auto bad = topic::check_name(topic, shard_.owner.topic_limits())) {
        close(reason_code::topic_name_invalid, topic::to_string(*bad));
        return;
    }
    shard_.counters.publish_received.fetch_add(1, std::memory_order_relaxed);
    shard_.counters.publish_bytes_received.fetch_add(pub.payload.size(), std::memory_order_relaxed);
    if (publish_rate_.limited() || publish_bytes_.limited()) {
        // last_rx_: the time of the read this packet came in.
        if (!publish_rate_.take(1, last_rx_) || !publish_bytes_.take(double(pub.payload.size()), last_rx_)) {
            shard_.counters.rate_limited.fetch_add(1, std::memory_order_relaxed);
            close(reason_code::message_rate_too_high,
                  "publishing faster than [mqtt] max_publish_rate / max_publish_byte_rate allow");
            return;
        }
    }

    if (pub.qos > 0) {
        if (pub.qos == 2 && s.has_inbound_qos2(pub.packet_id)) {
            // A resend of a QoS 2 publish we already took (already counted
            // against the receive maximum): don't route it again; acknowledge
            // it unless its PUBREC is still to come.
            const auto& pending = s.inbound_qos2_unacked;
            if (std::find(pending.begin(), pending.end(), pub.packet_id) == pending.end())
                send(p::ack{p::packet_type::pubrec, pub.packet_id, reason_code::success, {}});
            return;
        }
        if (is_v5(version_) && inbound_unacked_ >= o.receive_maximum) {
            close(reason_code::receive_maximum_exceeded, "receive maximum exceeded");
            return;
        }
        ++inbound_unacked_;
    }

    const bool allowed = !topic.starts_with("$SYS") && !(!s.mount.empty() && topic.starts_with('$')) &&
                         (shard_.owner.auth == nullptr || shard_.owner.auth->may_publish(s.identity, topic));
    if (!allowed) {
        if (shard_.owner.auth != nullptr) shard_.owner.auth->denied(s.identity, topic, false);
        refuse(topic, reason_code::not_authorized);
        answer_refused(pub, reason_code::not_authorized);
        return;
    }

    if (tenant_rate_ != 0 && tenant_ != nullptr && !tenant_allows_publish()) {
        shard_.counters.tenant_publishes_refused.fetch_add(1, std::memory_order_relaxed);
        refuse(topic, reason_code::quota_exceeded);
        answer_refused(pub, reason_code::quota_exceeded);
        return;
    }

    auto m = shard_.pool.acquire();
    m->topic.reserve(s.mount.size() + topic.size());
    m->topic.append(s.mount).append(topic);
    m->payload.assign(pub.payload);
    if (is_v5(version_)) {
        m->forwarded_props = forwarded_properties(pub.props);
        if (pub.props.message_expiry_interval)
            m->expires_at = clock::now() + std::chrono::seconds(*pub.props.message_expiry_interval);
    }
    m->qos = pub.qos;
    m->retain = pub.retain;
    if (pub.retain) m->retain_seq = shard_.owner.next_retain_seq();
    m->publisher_session = s.id();
    m->origin_shard = shard_.index;

    ticket_ptr t;
    if (pub.qos > 0) {
        t = std::make_shared<ack_ticket>();
        t->origin_shard = shard_.index;
        t->connection_id = id_;
        t->packet_id = pub.packet_id;
        t->qos = pub.qos;
    }
    if (auto* observer = shard_.owner.observer) {
        if (const auto verdict = observer->on_publish(m, ack_hold(&t)); verdict != reason_code::success) {
            refuse(topic, verdict);
            answer_refused(pub, verdict);
            return;
        }
        shard_.schedule_flush(); // on_batch_end
    }
    if (pub.qos == 2) {
        s.inbound_qos2.push_back(pub.packet_id);
        s.inbound_qos2_unacked.push_back(pub.packet_id);
    }
    if (m->retain) shard_.persist_retained(*m, t);
    shard_.route(m, t);
    if (t) shard_.release(t);
}

// One PUBLISH against the tenant's rate (shared with its other clients).
bool connection::tenant_allows_publish() {
    const auto rate = tenant_rate_;
    std::lock_guard lock(tenant_->mutex);
    if (tenant_->rate != rate) {
        tenant_->publishes = token_bucket(rate, double(rate) * shard_.opts.publish_burst_s, last_rx_);
        tenant_->rate = rate;
    }
    return tenant_->publishes.take(1, last_rx_);
}

// Whether the session registered as `e` has a connection now (on its shard).
asio::awaitable<bool> connection::is_connected(const registry_entry& e) {
    shard& ps = *shard_.owner.shards[e.shard];
    const auto sid = e.session_id;
    auto look = [&ps, sid] {
        auto it = ps.sessions.find(sid);
        return it != ps.sessions.end() && it->second->conn != nullptr;
    };
    if (&ps == &shard_) co_return look();
    co_return co_await asio::co_spawn(
        ps.ioc, [look]() -> asio::awaitable<bool> { co_return look(); }, asio::use_awaitable);
}

// A publish refused before routing (ACL, observer): v5 says why; 3.1.1 has no
// way to, so the message is acknowledged and dropped, as Mosquitto does.
void connection::answer_refused(const p::publish& pub, reason_code code) {
    session& s = *session_;
    if (!is_v5(version_)) code = reason_code::success;
    if (pub.qos == 1) {
        --inbound_unacked_;
        send(p::ack{p::packet_type::puback, pub.packet_id, code, {}});
    } else if (pub.qos == 2) {
        if (code == reason_code::success) s.inbound_qos2.push_back(pub.packet_id);
        else --inbound_unacked_;
        send(p::ack{p::packet_type::pubrec, pub.packet_id, code, {}});
    }
}

void connection::send_publish_ack(const ack_ticket& t) {
    if (!session_ || closing_) return;
    if (t.deferred) {
        send(*t.deferred);
        schedule_pump();
        return;
    }
    const auto code = t.refused.load() && is_v5(version_) ? reason_code::quota_exceeded : reason_code::success;
    if (t.qos == 1) {
        if (inbound_unacked_ > 0) --inbound_unacked_;
        send(p::ack{p::packet_type::puback, t.packet_id, code, {}});
    } else {
        std::erase(session_->inbound_qos2_unacked, t.packet_id);
        if (code != reason_code::success) {
            // A failed PUBREC ends the QoS 2 flow (MQTT 5 §4.3.3).
            auto& ids = session_->inbound_qos2;
            std::erase(ids, t.packet_id);
            if (inbound_unacked_ > 0) --inbound_unacked_;
        }
        send(p::ack{p::packet_type::pubrec, t.packet_id, code, {}});
    }
    schedule_pump();
}

void connection::handle_ack(const p::ack& a) {
    session& s = *session_;
    switch (a.type) {
    case p::packet_type::puback: {
        auto* m = s.find_inflight(a.packet_id);
        if (m != nullptr && m->d.qos == 1) {
            shard_.unpersist_delivery(s, m->d);
            s.erase_inflight(a.packet_id);
        }
        break;
    }
    case p::packet_type::pubrec: {
        auto* m = s.find_inflight(a.packet_id);
        if (m == nullptr || m->d.qos != 2) {
            send(p::ack{p::packet_type::pubrel, a.packet_id,
                        is_v5(version_) ? reason_code::packet_identifier_not_found : reason_code::success, {}});
            return;
        }
        if (static_cast<unsigned>(a.code) >= 0x80) {
            shard_.unpersist_delivery(s, m->d);
            s.erase_inflight(a.packet_id);
            break;
        }
        m->released = true;
        m->d.msg.reset(); // the payload is no longer needed
        if (m->d.stored != 0) shard_.persist_delivery(s, m->d, nullptr, a.packet_id, true);
        send(p::ack{p::packet_type::pubrel, a.packet_id, reason_code::success, {}});
        return;
    }
    case p::packet_type::pubrel: {
        auto it = std::find(s.inbound_qos2.begin(), s.inbound_qos2.end(), a.packet_id);
        auto code = reason_code::success;
        if (it != s.inbound_qos2.end()) {
            s.inbound_qos2.erase(it);
            if (inbound_unacked_ > 0) --inbound_unacked_;
        } else if (is_v5(version_)) {
            code = reason_code::packet_identifier_not_found;
        }
        send(p::ack{p::packet_type::pubcomp, a.packet_id, code, {}});
        return;
    }
    case p::packet_type::pubcomp: {
        auto* m = s.find_inflight(a.packet_id);
        if (m != nullptr && m->released) {
            shard_.unpersist_delivery(s, m->d);
            s.erase_inflight(a.packet_id);
        }
        break;
    }
    default:
        break;
    }
    schedule_pump();
}

void connection::handle_subscribe(const p::subscribe& sub) {
    core& owner = shard_.owner;
    session& s = *session_;
    p::suback ack;
    ack.packet_id = sub.packet_id;
    struct retained_job {
        std::string filter;
        subscription_options opts;
    };
    boost::container::small_vector<retained_job, 2> retained_jobs;
    for (const auto& e : sub.entries) {
        auto code = static_cast<reason_code>(std::min<std::uint8_t>(e.qos, 2));
        const auto shared = topic::parse_shared(e.filter);
        const std::string_view inner = shared ? shared->filter : e.filter;
        if (auto bad = topic::check_filter(e.filter, owner.topic_limits())) {
            code = reason_code::topic_filter_invalid;
            refuse(e.filter, code);
        } else if (shared && e.no_local) {
            close(reason_code::protocol_error, "no local on a shared subscription");
            return;
        } else if ((!s.mount.empty() && inner.starts_with('$')) ||
                   (owner.auth != nullptr && !owner.auth->may_subscribe(s.identity, e.filter))) {
            code = reason_code::not_authorized;
            if (owner.auth != nullptr) owner.auth->denied(s.identity, e.filter, true);
            refuse(e.filter, code);
        } else {
            subscription_options so;
            so.qos = static_cast<std::uint8_t>(code);
            so.no_local = e.no_local;
            so.retain_as_published = e.retain_as_published;
            so.retain_handling = e.retain_handling;
            if (!sub.props.subscription_identifiers.empty())
                so.subscription_id = sub.props.subscription_identifiers.front();
            std::string internal = s.mount + std::string(inner);
            if (shared) {
                std::string key = fmt::format("$share/{}/{}", shared->group, internal);
                const bool is_new = s.subscriptions.insert_or_assign(key, so).second;
                (void)is_new;
                owner.add_shared(s.mount + std::string(shared->group), internal,
                                 shared_member{shard_.index, s.id(), so});
            } else {
                const bool is_new = s.subscriptions.insert_or_assign(internal, so).second;
                shard_.trie.insert(internal, s.id(), so);
                if (so.retain_handling == 0 || (so.retain_handling == 1 && is_new))
                    retained_jobs.push_back({std::move(internal), so});
            }
        }
        if (!is_v5(version_) && static_cast<unsigned>(code) >= 0x80) code = reason_code::unspecified_error;
        ack.codes.push_back(code);
    }
    shard_.persist_then_send(*this, s, std::move(ack));
    for (auto& j : retained_jobs) shard_.deliver_retained(s, j.filter, j.opts);
    schedule_pump();
}

void connection::handle_unsubscribe(const p::unsubscribe& u) {
    core& owner = shard_.owner;
    session& s = *session_;
    p::unsuback ack;
    ack.packet_id = u.packet_id;
    for (auto f : u.filters) {
        auto code = reason_code::no_subscription_existed;
        const auto shared = topic::parse_shared(f);
        const std::string internal = s.mount + std::string(shared ? shared->filter : f);
        const std::string key =
            shared ? fmt::format("$share/{}/{}", shared->group, internal) : internal;
        if (auto it = s.subscriptions.find(key); it != s.subscriptions.end()) {
            s.subscriptions.erase(it);
            if (shared) owner.remove_shared(s.mount + std::string(shared->group), internal, s.id());
            else shard_.trie.erase(internal, s.id());
            code = reason_code::success;
        }
        if (is_v5(version_)) ack.codes.push_back(code);
    }
    shard_.persist_then_send(*this, s, std::move(ack));
}

void connection::handle_disconnect(const p::disconnect& d) {
    session& s = *session_;
    if (d.props.session_expiry_interval) {
        if (s.expiry_interval == 0 && *d.props.session_expiry_interval != 0) {
            close(reason_code::protocol_error, "session expiry set on DISCONNECT after 0 at CONNECT");
            return;
        }
        s.expiry_interval = std::min(*d.props.session_expiry_interval, shard_.opts.max_session_expiry);
    }
    const bool will = d.code == reason_code::disconnect_with_will;
    spdlog::info("client disconnected client_id=\"{}\" code=0x{:02x}", s.client_id(),
                 static_cast<unsigned>(d.code));
    begin_closing();
    detach_session(will);
    start_write();
}

const client_identity* connection::identity() const noexcept {
    return session_ && !closing_ ? &session_->identity : nullptr;
}

void connection::close(reason_code why, std::string_view reason, bool publish_will) {
    if (closing_) return;
    begin_closing();
    if (session_) {
        spdlog::info("client disconnected by server client_id=\"{}\" addr={} code=0x{:02x} reason=\"{}\"",
                     session_->client_id(), remote_, static_cast<unsigned>(why), reason);
        if (is_v5(version_)) {
            p::disconnect d;
            d.code = why;
            if (request_problem_info_) d.props.reason_string = reason;
            send(d);
        }
        detach_session(publish_will);
    }
    start_write();
}

std::shared_ptr<session> connection::release_session() {
    auto s = std::move(session_);
    if (s) {
        s->conn = nullptr;
        // PUBRECs this connection still owed will never be sent on it: a
        // resend on the next connection is answered at once.
        s->inbound_qos2_unacked.clear();
    }
    return s;
}

std::shared_ptr<session> connection::take_over() {
    if (closing_ || !session_) return release_session();
    spdlog::info("session taken over client_id=\"{}\" addr={}", session_->client_id(), remote_);
    begin_closing();
    if (is_v5(version_)) {
        p::disconnect d;
        d.code = reason_code::session_taken_over;
        if (request_problem_info_) d.props.reason_string = "another connection took over the session";
        send(d);
    }
    auto s = release_session();
    start_write();
    return s;
}

void connection::detach_session(bool publish_will) {
    auto s = release_session();
    if (!s) return;
    shard_.release_pressure(*s); // offline sessions refuse instead of throttling
    auto& released = shard_.released_scratch;
    for (std::size_t i = shard_.opts.max_queued_messages; i < s->queue.size(); ++i)
        shard_.unpersist_delivery(*s, s->queue[i]);
    s->trim_to_bound(shard_.opts.max_queued_messages, released);
    for (auto& t : released) shard_.release(t);
    released.clear();
    const auto now = clock::now();
    if (!publish_will) s->will.reset();
    if (s->will && (s->will->delay_s == 0 || s->clean_on_close())) shard_.publish_will(*s);
    else if (s->will) s->will_due = now + std::chrono::seconds(s->will->delay_s);
    if (s->clean_on_close()) {
        shard_.end_session(std::move(s), "disconnected", true);
    } else {
        s->offline_since = now;
        shard_.persist_session(*s); // records when it went offline
    }
}

void connection::pause_reading() {
    if (pauses_++ == 0) paused_at_ = clock::now();
}

void connection::resume_reading() {
    if (pauses_ == 0) return; // a resume for an earlier connection of the session
    if (--pauses_ == 0 && parked_) {
        last_rx_ = clock::now(); // time spent paused is not the client's silence
        if (!closing_) start_reading(); // the read handler now owns the connection
        asio::post(stream_->get_executor(), [p = std::move(parked_)] {});
    }
}

void connection::check_timeouts(clock::time_point now) {
    if (closing_) {
        // A peer that does not read our last packets does not keep the socket.
        if (!closed_ && now - closing_at_ > std::chrono::seconds(5)) finish_close();
        return;
    }
    if (!session_) {
        if (!connect_seen_ && now - opened_at_ > shard_.opts.connect_timeout) {
            spdlog::debug("connection closed addr={} reason=\"no CONNECT in time\"", remote_);
            begin_closing();
            finish_close();
        }
        return;
    }
    // Idle since the last check: give the output buffers back, so that the
    // many mostly silent connections of a gateway cost little memory.
    if (!write_in_flight_ && segments_.empty() && !wrote_since_check_) release_output_buffers();
    wrote_since_check_ = false;
    if (pauses_ > 0) {
        if (now - paused_at_ < shard::max_pause) return;
        // Paused too long: read again (see shard::apply_pressure).
        pauses_ = 1;
        resume_reading();
        return;
    }
    if (keep_alive_ != 0 && now - last_rx_ > std::chrono::milliseconds(keep_alive_ * 1500u))
        close(reason_code::keep_alive_timeout, "keep alive timeout");
}

// ---- output -------------------------------------------------------------

void connection::send(const p::packet& pk) {
    const auto start = out_.size();
    p::encode(pk, version_, out_);
    if (!segments_.empty() && segments_.back().payload == nullptr) {
        segments_.back().size += out_.size() - start;
    } else {
        segments_.push_back({start, out_.size() - start, nullptr, 0});
    }
    shard_.counters.messages_sent.fetch_add(1, std::memory_order_relaxed);
    schedule_pump();
}

bool connection::write_delivery(delivery& d, std::uint16_t packet_id, bool dup) {
    const message& m = *d.msg;
    std::string_view topic = m.topic;
    const auto& mount = session_->mount;
    assert(topic.starts_with(mount));
    topic.remove_prefix(mount.size());

    p::publish pub;
    pub.qos = d.qos;
    pub.retain = d.retain;
    pub.dup = dup;
    pub.packet_id = packet_id;
    pub.topic = topic;
    std::string_view raw_props;
    bool new_alias = false;
    if (is_v5(version_)) {
        pub.props.subscription_identifiers.assign(d.subscription_ids.begin(), d.subscription_ids.end());
        pub.props.message_expiry_interval = m.remaining_expiry(clock::now());
        if (client_alias_max_ != 0) {
            if (!aliases_) aliases_ = std::make_unique<topic_aliases>();
            auto& tx_aliases_ = aliases_->tx;
            if (auto it = tx_aliases_.find(topic); it != tx_aliases_.end()) {
                pub.props.topic_alias = it->second;
                pub.topic = {};
            } else if (tx_aliases_.size() < client_alias_max_) {
                new_alias = true;
                pub.props.topic_alias = static_cast<std::uint16_t>(tx_aliases_.size() + 1);
            }
        }
        raw_props = m.forwarded_props;
    }
    // The common case, a QoS 0 delivery that needs nothing of this client's
    // own (no alias, no subscription id, no expiry), is the same bytes for
    // every subscriber of a protocol version and tenant view: encoded once,
    // into the message, by whichever shard gets there first.
    if (d.qos == 0 && !d.retain && !dup && d.subscription_ids.empty() && !m.expires_at && client_alias_max_ == 0) {
        const unsigned slot = (is_v5(version_) ? 2u : 0u) + (mount.empty() ? 0u : 1u);
        const std::string* bytes = m.shared_encoding(slot);
        if (bytes == nullptr) {
            if (std::string* b = m.begin_shared_encoding(slot)) {
                p::encode_publish_header(pub, m.payload.size(), version_, *b, raw_props);
                b->append(m.payload);
                m.end_shared_encoding(slot);
                bytes = b;
            }
        }
        if (bytes != nullptr) { // else another shard is encoding it right now
            if (bytes->size() > client_max_packet_) {
                shard_.counters.publish_dropped.fetch_add(1, std::memory_order_relaxed);
                return false;
            }
            const auto start = out_.size();
            if (bytes->size() <= inline_payload_max) {
                out_.append(*bytes);
                if (!segments_.empty() && segments_.back().payload == nullptr) segments_.back().size += bytes->size();
                else segments_.push_back({start, bytes->size(), nullptr, 0});
            } else {
                segments_.push_back({start, 0, bytes->data(), bytes->size()});
                out_refs_.push_back(d.msg);
                out_payload_bytes_ += bytes->size();
            }
            shard_.counters.messages_sent.fetch_add(1, std::memory_order_relaxed);
            shard_.counters.publish_sent.fetch_add(1, std::memory_order_relaxed);
            shard_.counters.publish_bytes_sent.fetch_add(m.payload.size(), std::memory_order_relaxed);
            return true;
        }
    }

    const auto start = out_.size();
    p::encode_publish_header(pub, m.payload.size(), version_, out_, raw_props);
    if (out_.size() - start + m.payload.size() > client_max_packet_) {
        // MQTT 5 §3.1.2.11.4: discard what the client cannot take, as if sent.
        out_.resize(start);
        shard_.counters.publish_dropped.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    // The alias is the client's only once it has seen it with its topic.
    if (new_alias) aliases_->tx.emplace(topic, *pub.props.topic_alias);
    if (m.payload.size() <= inline_payload_max) {
        out_.append(m.payload);
        if (!segments_.empty() && segments_.back().payload == nullptr) segments_.back().size += out_.size() - start;
        else segments_.push_back({start, out_.size() - start, nullptr, 0});
    } else {
        segments_.push_back({start, out_.size() - start, m.payload.data(), m.payload.size()});
        out_refs_.push_back(d.msg);
        out_payload_bytes_ += m.payload.size();
    }
    shard_.counters.messages_sent.fetch_add(1, std::memory_order_relaxed);
    shard_.counters.publish_sent.fetch_add(1, std::memory_order_relaxed);
    shard_.counters.publish_bytes_sent.fetch_add(m.payload.size(), std::memory_order_relaxed);
    return true;
}

void connection::pump() {
    pump_scheduled_ = false;
    if (session_ && !closing_) {
        session& s = *session_;
        const auto& o = shard_.opts;
        const std::size_t window = std::min<std::size_t>(client_receive_max_, o.max_inflight);
        const auto now = clock::now();
        auto& released = shard_.released_scratch;
        if (resend_pending_) {
            std::size_t sent = 0;
            resend_pending_ = false;
            for (std::size_t i = 0; i < s.inflight.size(); ++i) {
                auto& m = s.inflight[i];
                if (m.sent) {
                    ++sent;
                } else if (sent < window) {
                    if (m.released) send(p::ack{p::packet_type::pubrel, m.packet_id, reason_code::success, {}});
                    else write_delivery(m.d, m.packet_id, true);
                    m.sent = true;
                    ++sent;
                } else {
                    resend_pending_ = true;
                }
            }
        }
        while (!s.queue.empty() && out_.size() + out_payload_bytes_ < output_budget) {
            auto& front = s.queue.front();
            if (front.qos > 0 && s.inflight.size() >= window) break;
            delivery d = s.pop_front(o.max_queued_messages, released);
            if (d.msg->expired(now)) {
                shard_.counters.publish_dropped.fetch_add(1, std::memory_order_relaxed);
                shard_.unpersist_delivery(s, d);
                continue;
            }
            if (d.qos == 0) {
                write_delivery(d, 0, false);
            } else {
                const auto id = s.next_packet_id();
                if (write_delivery(d, id, false)) {
                    // QoS 2 keeps its packet id across a restart (no duplicate).
                    if (d.qos == 2 && d.stored != 0) shard_.persist_delivery(s, d, nullptr, id);
                    s.inflight.push_back({std::move(d), id, false});
                } else {
                    shard_.unpersist_delivery(s, d);
                }
            }
        }
        for (auto& t : released) shard_.release(t);
        released.clear();
        if (!s.paused_publishers.empty() && s.queue.size() <= shard_.low_water()) shard_.release_pressure(s);
    }
    start_write();
}

void connection::schedule_pump() {
    if (pump_scheduled_ || closed_) return;
    pump_scheduled_ = true;
    shard_.add_dirty(shared_from_this());
}

void connection::start_write() {
    if (write_in_flight_ || closed_) return;
    if (segments_.empty()) {
        if (closing_) finish_close();
        return;
    }
    std::swap(out_, wbuf_);
    std::swap(segments_, wsegments_);
    std::swap(out_refs_, wrefs_);
    out_.clear();
    segments_.clear();
    out_refs_.clear();
    out_payload_bytes_ = 0;
    wbuffers_.clear();
    for (const auto& sg : wsegments_) {
        if (sg.size != 0) wbuffers_.emplace_back(wbuf_.data() + sg.offset, sg.size);
        if (sg.payload != nullptr) wbuffers_.emplace_back(sg.payload, sg.payload_size);
    }
    write_in_flight_ = true;
    stream_->async_write(wbuffers_, asio::bind_allocator(asio::recycling_allocator<void>(),
                                                         [self = shared_from_this()](boost::system::error_code ec,
                                                                                     std::size_t n) {
                                                             self->on_written(ec, n);
                                                         }));
}

void connection::release_output_buffers() {
    std::string().swap(out_);
    std::string().swap(wbuf_);
    std::vector<segment>().swap(segments_);
    std::vector<segment>().swap(wsegments_);
    std::vector<message_ptr>().swap(out_refs_);
    std::vector<message_ptr>().swap(wrefs_);
    std::vector<asio::const_buffer>().swap(wbuffers_);
}

void connection::on_written(boost::system::error_code ec, std::size_t n) {
    write_in_flight_ = false;
    wrote_since_check_ = true;
    wrefs_.clear();
    if (wbuf_.capacity() > 4 * output_budget) std::string().swap(wbuf_);
    shard_.counters.bytes_sent.fetch_add(n, std::memory_order_relaxed);
    if (ec) {
        if (!closing_) {
            begin_closing();
            detach_session(true);
        }
        finish_close();
        return;
    }
    if (closed_) return;
    pump();
}

void connection::finish_close() {
    if (closed_) return;
    closed_ = true;
    // A parked connection owns itself; let it go from a later handler, never
    // from under a caller that is still using it.
    if (parked_) asio::post(stream_->get_executor(), [p = std::move(parked_)] {});
    stream_->close();
}

} // namespace pulsegate::broker::detail
