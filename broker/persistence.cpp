// Durable broker state (persistence.hpp): the record formats, the shard's
// write-through hooks and the restore at start.
//
// Record formats (little-endian integers, strings as u32 length + bytes; the
// first byte is the format version, so a later format can read this one):
//   session:  v, protocol version, anonymous, expiry u32, last_seen_ms i64
//             (0: was online), tenant, principal, mount, count u32, then per
//             subscription: filter, qos, flags (no_local | rap << 1), retain
//             handling, subscription id u32; then client kind, device.
//   queued:   v, qos, retain flag, message qos, message retain, released,
//             packet id u16, expires_ms i64 (0: never), topic, payload,
//             forwarded props, count u32, subscription ids u32...
//   retained: v, qos, expires_ms i64, topic-less: payload, forwarded props.

#include "broker/core.hpp"
#include "broker/persistence.hpp"

#include <spdlog/spdlog.h>

#include <bit>
#include <chrono>
#include <cstring>
#include <optional>
#include <unordered_map>

namespace pulsegate::broker::detail {
namespace {

constexpr std::uint8_t format_version = 1;

class writer {
public:
    explicit writer(std::string& out) : out_(out) { out_.clear(); }
    template <class T> void num(T v) {
        static_assert(std::endian::native == std::endian::little, "records are little-endian");
        char b[sizeof(T)];
        std::memcpy(b, &v, sizeof(T));
        out_.append(b, sizeof(T));
    }
    void str(std::string_view s) {
        num(static_cast<std::uint32_t>(s.size()));
        out_.append(s);
    }

private:
    std::string& out_;
};

// Reads a record; any read past the end marks it bad (a truncated or foreign
// record is skipped with a warning, never trusted).
class reader {
public:
    explicit reader(std::string_view in) : in_(in) {}
    template <class T> T num() {
        T v{};
        if (in_.size() < sizeof(T)) {
            bad_ = true;
            return v;
        }
        std::memcpy(&v, in_.data(), sizeof(T));
        in_.remove_prefix(sizeof(T));
        return v;
    }
    std::string_view str() {
        const auto n = num<std::uint32_t>();
        if (bad_ || in_.size() < n) {
            bad_ = true;
            return {};
        }
        auto s = in_.substr(0, n);
        in_.remove_prefix(n);
        return s;
    }
    bool ok() const noexcept { return !bad_; }

private:
    std::string_view in_;
    bool bad_ = false;
};

std::int64_t wall_ms(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// A steady-clock expiry as wall-clock milliseconds, and back.
std::int64_t expiry_to_wall(const std::optional<clock::time_point>& e) {
    if (!e) return 0;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*e - clock::now());
    return wall_ms(std::chrono::system_clock::now()) + left.count();
}
std::optional<clock::time_point> expiry_from_wall(std::int64_t ms) {
    if (ms == 0) return std::nullopt;
    const auto left = std::chrono::milliseconds(ms - wall_ms(std::chrono::system_clock::now()));
    return clock::now() + left;
}

std::string queued_key(std::string_view session_key, std::uint64_t seq) {
    std::string k;
    k.reserve(session_key.size() + 9);
    k.append(session_key).push_back('\0');
    for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((seq >> (8 * i)) & 0xFF));
    return k;
}

} // namespace

// A hold on `t` for a durable write, when the store makes acks wait.
std::shared_ptr<void> shard::take_hold(const ticket_ptr& t) {
    if (!t || !owner.store->holds_acks()) return {};
    t->holds.fetch_add(1, std::memory_order_relaxed);
    return t;
}

void shard::persist_session(session& s, const ticket_ptr& t) {
    auto* st = owner.store;
    if (st == nullptr) return;
    if (s.expiry_interval == 0) {
        unpersist_session(s);
        return;
    }
    if (s.store_key.empty()) s.store_key = registry_key(s.identity, s.client_id());
    writer w(record_scratch_);
    w.num(format_version);
    w.num(static_cast<std::uint8_t>(s.version));
    w.num(static_cast<std::uint8_t>(s.identity.anonymous));
    w.num(s.expiry_interval);
    w.num(s.conn != nullptr ? std::int64_t{0} : wall_ms(std::chrono::system_clock::now()));
    w.str(s.identity.tenant);
    w.str(s.identity.principal);
    w.str(s.mount);
    w.num(static_cast<std::uint32_t>(s.subscriptions.size()));
    for (const auto& [filter, o] : s.subscriptions) {
        w.str(filter);
        w.num(o.qos);
        w.num(static_cast<std::uint8_t>(o.no_local | (o.retain_as_published << 1)));
        w.num(o.retain_handling);
        w.num(o.subscription_id);
    }
    w.num(static_cast<std::uint8_t>(s.identity.kind));
    w.str(s.identity.device);
    st->put(durable_table::sessions, s.store_key, record_scratch_, take_hold(t));
    s.stored = true;
}

void shard::persist_then_send(connection& c, session& s, protocol::packet ack) {
    if (!s.stored || owner.store == nullptr || !owner.store->holds_acks()) {
        persist_session(s);
        c.send(ack);
        return;
    }
    auto t = std::make_shared<ack_ticket>();
    t->origin_shard = index;
    t->connection_id = c.id();
    t->deferred = std::make_unique<protocol::packet>(std::move(ack));
    persist_session(s, t);
    release(t);
}

void shard::unpersist_session(session& s) {
    auto* st = owner.store;
    if (st == nullptr || !s.stored) return;
    for (std::size_t i = 0; i < s.queue.size(); ++i) unpersist_delivery(s, s.queue[i]);
    for (std::size_t i = 0; i < s.inflight.size(); ++i) unpersist_delivery(s, s.inflight[i].d);
    st->erase(durable_table::sessions, s.store_key, nullptr);
    s.stored = false;
}

void shard::persist_delivery(session& s, delivery& d, const ticket_ptr& t, std::uint16_t packet_id,
                             bool released) {
    auto* st = owner.store;
    if (st == nullptr || !s.stored || d.qos == 0) return;
    if (d.stored == 0) d.stored = ++s.store_seq;
    writer w(record_scratch_);
    w.num(format_version);
    w.num(d.qos);
    w.num(static_cast<std::uint8_t>(d.retain));
    const message* m = d.msg.get();
    w.num(static_cast<std::uint8_t>(m ? m->qos : 0));
    w.num(static_cast<std::uint8_t>(m ? m->retain : 0));
    w.num(static_cast<std::uint8_t>(released));
    w.num(packet_id);
    w.num(m ? expiry_to_wall(m->expires_at) : std::int64_t{0});
    w.str(m ? std::string_view(m->topic) : std::string_view());
    w.str(m ? std::string_view(m->payload) : std::string_view());
    w.str(m ? std::string_view(m->forwarded_props) : std::string_view());
    w.num(static_cast<std::uint32_t>(d.subscription_ids.size()));
    for (auto id : d.subscription_ids) w.num(id);
    st->put(durable_table::queued, queued_key(s.store_key, d.stored), record_scratch_, take_hold(t));
}

void shard::unpersist_delivery(session& s, delivery& d) {
    auto* st = owner.store;
    if (st == nullptr || d.stored == 0) return;
    st->erase(durable_table::queued, queued_key(s.store_key, d.stored), nullptr);
    d.stored = 0;
}

void shard::persist_retained(const message& m, const ticket_ptr& t) {
    auto* st = owner.store;
    if (st == nullptr) return;
    auto hold = take_hold(t);
    if (m.payload.empty()) {
        st->erase(durable_table::retained, m.topic, std::move(hold));
        return;
    }
    writer w(record_scratch_);
    w.num(format_version);
    w.num(m.qos);
    w.num(expiry_to_wall(m.expires_at));
    w.str(m.payload);
    w.str(m.forwarded_props);
    st->put(durable_table::retained, m.topic, record_scratch_, std::move(hold));
}

// Runs in server::start() before any shard thread: touches the shards directly.
void core::restore(state_store& st) {
    const auto now = clock::now();
    const auto wall_now = wall_ms(std::chrono::system_clock::now());
    std::size_t skipped = 0;

    std::size_t retained_count = 0;
    st.load(durable_table::retained, [&](std::string_view key, std::string_view value) {
        reader r(value);
        const auto v = r.num<std::uint8_t>();
        auto m = make_message();
        m->topic.assign(key);
        m->qos = r.num<std::uint8_t>();
        m->expires_at = expiry_from_wall(r.num<std::int64_t>());
        m->payload.assign(r.str());
        m->forwarded_props.assign(r.str());
        m->retain = true;
        if (v != format_version || !r.ok()) {
            ++skipped;
            return;
        }
        if (m->expired(now)) {
            st.erase(durable_table::retained, key, nullptr);
            return;
        }
        m->retain_seq = next_retain_seq();
        message_ptr shared = m;
        for (auto& sh : shards) sh->retained.insert_or_assign(shared->topic, shared);
        ++retained_count;
    });

    std::unordered_map<std::string, std::shared_ptr<session>, string_hash, std::equal_to<>> by_key;
    unsigned next_shard = 0;
    std::size_t expired = 0;
    st.load(durable_table::sessions, [&](std::string_view key, std::string_view value) {
        reader r(value);
        const auto v = r.num<std::uint8_t>();
        const auto version = r.num<std::uint8_t>();
        const bool anonymous = r.num<std::uint8_t>() != 0;
        const auto expiry = r.num<std::uint32_t>();
        const auto last_seen = r.num<std::int64_t>();
        client_identity who;
        who.tenant.assign(r.str());
        who.principal.assign(r.str());
        who.anonymous = anonymous;
        const auto mount = r.str();
        const auto count = r.num<std::uint32_t>();
        const auto cut = key.find('\0');
        if (v != format_version || !r.ok() || cut == std::string_view::npos) {
            ++skipped;
            return;
        }
        auto s = std::make_shared<session>(std::string(key.substr(cut + 1)), next_id.fetch_add(1));
        s->identity = std::move(who);
        s->mount.assign(mount);
        s->version = static_cast<protocol::protocol_version>(version);
        s->expiry_interval = expiry;
        for (std::uint32_t i = 0; i < count && r.ok(); ++i) {
            std::string filter(r.str());
            subscription_options o;
            o.qos = r.num<std::uint8_t>();
            const auto flags = r.num<std::uint8_t>();
            o.no_local = (flags & 1) != 0;
            o.retain_as_published = (flags & 2) != 0;
            o.retain_handling = r.num<std::uint8_t>();
            o.subscription_id = r.num<std::uint32_t>();
            s->subscriptions.emplace(std::move(filter), o);
        }
        s->identity.kind = static_cast<client_kind>(r.num<std::uint8_t>());
        s->identity.device.assign(r.str());
        if (!r.ok() || s->identity.kind > client_kind::operator_) {
            ++skipped;
            return;
        }
        // Offline since its last disconnect, or since now if it was online
        // when the daemon stopped.
        const auto offline_for =
            std::chrono::milliseconds(last_seen == 0 ? 0 : std::max<std::int64_t>(0, wall_now - last_seen));
        if (expiry != 0xFFFFFFFFu && offline_for >= std::chrono::seconds(expiry)) {
            // Expired while the daemon was down (its queued records go below,
            // as orphans).
            st.erase(durable_table::sessions, key, nullptr);
            ++expired;
            return;
        }
        s->offline_since = now - offline_for;
        s->store_key.assign(key);
        s->stored = true;
        shard& home = *shards[next_shard++ % shards.size()];
        registry[std::string(key)] = registry_entry{home.index, s->id(), false};
        home.install(s);
        by_key.emplace(std::string(key), std::move(s));
    });

    std::size_t queued_count = 0;
    st.load(durable_table::queued, [&](std::string_view key, std::string_view value) {
        if (key.size() < 9) {
            ++skipped;
            return;
        }
        const auto skey = key.substr(0, key.size() - 9);
        std::uint64_t seq = 0;
        for (std::size_t i = key.size() - 8; i < key.size(); ++i) seq = (seq << 8) | static_cast<std::uint8_t>(key[i]);
        auto it = by_key.find(skey);
        if (it == by_key.end()) {
            // Its session ended without the erase reaching the disk.
            st.erase(durable_table::queued, key, nullptr);
            return;
        }
        session& s = *it->second;
        reader r(value);
        const auto v = r.num<std::uint8_t>();
        delivery d;
        d.qos = r.num<std::uint8_t>();
        d.retain = r.num<std::uint8_t>() != 0;
        auto m = make_message();
        m->qos = r.num<std::uint8_t>();
        m->retain = r.num<std::uint8_t>() != 0;
        const bool released = r.num<std::uint8_t>() != 0;
        const auto packet_id = r.num<std::uint16_t>();
        m->expires_at = expiry_from_wall(r.num<std::int64_t>());
        m->topic.assign(r.str());
        m->payload.assign(r.str());
        m->forwarded_props.assign(r.str());
        const auto ids = r.num<std::uint32_t>();
        for (std::uint32_t i = 0; i < ids && r.ok(); ++i) d.subscription_ids.push_back(r.num<std::uint32_t>());
        if (v != format_version || !r.ok()) {
            ++skipped;
            return;
        }
        d.stored = seq;
        s.store_seq = std::max(s.store_seq, seq);
        if (!released) d.msg = std::move(m);
        if (packet_id != 0 && s.find_inflight(packet_id) == nullptr) {
            s.inflight.push_back({std::move(d), packet_id, released, false});
        } else if (d.msg) {
            s.queue.push_back(std::move(d));
        }
        ++queued_count;
    });
    if (skipped != 0) spdlog::warn("durable broker state: skipped unreadable records count={}", skipped);
    spdlog::info("restored broker state sessions={} expired_sessions={} queued_messages={} retained={}",
                 by_key.size(), expired, queued_count, retained_count);
}

} // namespace pulsegate::broker::detail
