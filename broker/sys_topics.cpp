#include "broker/sys_topics.hpp"

#include <charconv>
#include <cmath>
#include <string>

namespace pulsegate::broker {

namespace {

// Where each topic's payload comes from.
enum class source : unsigned char { version, uptime, clients_total, clients_maximum, counter, heap, load };
enum class window : unsigned char { none, m1, m5, m15 };

struct entry {
    std::string_view topic;
    source from;
    std::uint64_t sys_stats::*counter = nullptr;
    load_kind load = load_kind::messages_received;
    window win = window::none;
};

using s = sys_stats;
using lk = load_kind;

// Mosquitto 2.0's $SYS/broker tree (src/sys_tree.c), plus
// shared_subscriptions/count from 2.1.
constexpr entry entries[] = {
    {"$SYS/broker/version", source::version},
    {"$SYS/broker/uptime", source::uptime},
    {"$SYS/broker/clients/total", source::clients_total},
    {"$SYS/broker/clients/maximum", source::clients_maximum},
    {"$SYS/broker/clients/connected", source::counter, &s::clients_connected},
    {"$SYS/broker/clients/active", source::counter, &s::clients_connected},
    {"$SYS/broker/clients/disconnected", source::counter, &s::clients_disconnected},
    {"$SYS/broker/clients/inactive", source::counter, &s::clients_disconnected},
    {"$SYS/broker/clients/expired", source::counter, &s::clients_expired},
    {"$SYS/broker/messages/stored", source::counter, &s::stored_messages},
    {"$SYS/broker/store/messages/count", source::counter, &s::stored_messages},
    {"$SYS/broker/store/messages/bytes", source::counter, &s::stored_bytes},
    {"$SYS/broker/subscriptions/count", source::counter, &s::subscriptions},
    {"$SYS/broker/shared_subscriptions/count", source::counter, &s::shared_subscriptions},
    {"$SYS/broker/retained messages/count", source::counter, &s::retained_messages},
    {"$SYS/broker/heap/current", source::heap, &s::heap_current},
    {"$SYS/broker/heap/maximum", source::heap, &s::heap_maximum},
    {"$SYS/broker/messages/received", source::counter, &s::messages_received},
    {"$SYS/broker/messages/sent", source::counter, &s::messages_sent},
    {"$SYS/broker/publish/messages/dropped", source::counter, &s::publish_messages_dropped},
    {"$SYS/broker/publish/messages/received", source::counter, &s::publish_messages_received},
    {"$SYS/broker/publish/messages/sent", source::counter, &s::publish_messages_sent},
    {"$SYS/broker/publish/bytes/received", source::counter, &s::publish_bytes_received},
    {"$SYS/broker/publish/bytes/sent", source::counter, &s::publish_bytes_sent},
    {"$SYS/broker/bytes/received", source::counter, &s::bytes_received},
    {"$SYS/broker/bytes/sent", source::counter, &s::bytes_sent},
    {"$SYS/broker/load/messages/received/1min", source::load, nullptr, lk::messages_received, window::m1},
    {"$SYS/broker/load/messages/received/5min", source::load, nullptr, lk::messages_received, window::m5},
    {"$SYS/broker/load/messages/received/15min", source::load, nullptr, lk::messages_received, window::m15},
    {"$SYS/broker/load/messages/sent/1min", source::load, nullptr, lk::messages_sent, window::m1},
    {"$SYS/broker/load/messages/sent/5min", source::load, nullptr, lk::messages_sent, window::m5},
    {"$SYS/broker/load/messages/sent/15min", source::load, nullptr, lk::messages_sent, window::m15},
    {"$SYS/broker/load/publish/dropped/1min", source::load, nullptr, lk::publish_dropped, window::m1},
    {"$SYS/broker/load/publish/dropped/5min", source::load, nullptr, lk::publish_dropped, window::m5},
    {"$SYS/broker/load/publish/dropped/15min", source::load, nullptr, lk::publish_dropped, window::m15},
    {"$SYS/broker/load/publish/received/1min", source::load, nullptr, lk::publish_received, window::m1},
    {"$SYS/broker/load/publish/received/5min", source::load, nullptr, lk::publish_received, window::m5},
    {"$SYS/broker/load/publish/received/15min", source::load, nullptr, lk::publish_received, window::m15},
    {"$SYS/broker/load/publish/sent/1min", source::load, nullptr, lk::publish_sent, window::m1},
    {"$SYS/broker/load/publish/sent/5min", source::load, nullptr, lk::publish_sent, window::m5},
    {"$SYS/broker/load/publish/sent/15min", source::load, nullptr, lk::publish_sent, window::m15},
    {"$SYS/broker/load/bytes/received/1min", source::load, nullptr, lk::bytes_received, window::m1},
    {"$SYS/broker/load/bytes/received/5min", source::load, nullptr, lk::bytes_received, window::m5},
    {"$SYS/broker/load/bytes/received/15min", source::load, nullptr, lk::bytes_received, window::m15},
    {"$SYS/broker/load/bytes/sent/1min", source::load, nullptr, lk::bytes_sent, window::m1},
    {"$SYS/broker/load/bytes/sent/5min", source::load, nullptr, lk::bytes_sent, window::m5},
    {"$SYS/broker/load/bytes/sent/15min", source::load, nullptr, lk::bytes_sent, window::m15},
    {"$SYS/broker/load/sockets/1min", source::load, nullptr, lk::sockets, window::m1},
    {"$SYS/broker/load/sockets/5min", source::load, nullptr, lk::sockets, window::m5},
    {"$SYS/broker/load/sockets/15min", source::load, nullptr, lk::sockets, window::m15},
    {"$SYS/broker/load/connections/1min", source::load, nullptr, lk::connections, window::m1},
    {"$SYS/broker/load/connections/5min", source::load, nullptr, lk::connections, window::m5},
    {"$SYS/broker/load/connections/15min", source::load, nullptr, lk::connections, window::m15},
};

constexpr auto make_names() {
    std::array<std::string_view, std::size(entries)> out{};
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = entries[i].topic;
    return out;
}
constexpr auto names = make_names();

// Counter each load_kind is computed from, indexed by load_kind.
constexpr std::uint64_t sys_stats::*load_counters[load_kind_count] = {
    &s::messages_received, &s::messages_sent,  &s::publish_messages_dropped,
    &s::publish_messages_received, &s::publish_messages_sent, &s::bytes_received,
    &s::bytes_sent, &s::sockets, &s::connections,
};

std::string_view format(char* first, char* last, std::uint64_t v) noexcept {
    return {first, static_cast<std::size_t>(std::to_chars(first, last, v).ptr - first)};
}

// Mosquitto prints loads with "%.2f"; to_chars does the same, locale-free.
std::string_view format(char* first, char* last, double v) noexcept {
    const auto r = std::to_chars(first, last, v, std::chars_format::fixed, 2);
    return {first, static_cast<std::size_t>(r.ptr - first)};
}

} // namespace

void load_average::update(std::uint64_t delta, double interval_seconds) noexcept {
    if (!(interval_seconds > 0)) return;
    const double rate = static_cast<double>(delta) * 60.0 / interval_seconds;
    const auto decay = [&](double& value, double window_seconds) {
        value = rate + std::exp(-interval_seconds / window_seconds) * (value - rate);
    };
    decay(value_1min_, 60.0);
    decay(value_5min_, 300.0);
    decay(value_15min_, 900.0);
}

void sys_loads::update(const sys_stats& now, double elapsed_seconds) noexcept {
    const auto total = now.clients_connected + now.clients_disconnected;
    if (total > clients_maximum_) clients_maximum_ = total;
    for (std::size_t i = 0; i < load_kind_count; ++i) {
        const auto value = now.*load_counters[i];
        if (primed_) loads_[i].update(value >= last_[i] ? value - last_[i] : 0, elapsed_seconds);
        last_[i] = value;
    }
    primed_ = true;
}

void render_sys_topics(const sys_stats& stats, const sys_loads& loads,
                       const std::function<void(std::string_view, std::string_view)>& emit) {
    char buf[64];
    char* const end = buf + sizeof buf;
    for (const auto& e : entries) {
        switch (e.from) {
        case source::version:
            emit(e.topic, std::string("pulsegate version ").append(stats.version));
            break;
        case source::uptime:
            emit(e.topic, std::string(format(buf, end, stats.uptime_seconds)).append(" seconds"));
            break;
        case source::clients_total:
            emit(e.topic, format(buf, end, stats.clients_connected + stats.clients_disconnected));
            break;
        case source::clients_maximum:
            emit(e.topic, format(buf, end, loads.clients_maximum()));
            break;
        case source::heap:
            if (stats.*e.counter == 0) break;
            [[fallthrough]];
        case source::counter:
            emit(e.topic, format(buf, end, stats.*e.counter));
            break;
        case source::load: {
            const auto& l = loads.load(e.load);
            const double v = e.win == window::m1   ? l.value_1min()
                             : e.win == window::m5 ? l.value_5min()
                                                   : l.value_15min();
            emit(e.topic, format(buf, end, v));
            break;
        }
        }
    }
}

std::span<const std::string_view> sys_topic_names() noexcept {
    return names;
}

} // namespace pulsegate::broker
